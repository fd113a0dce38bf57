import { EncfsError } from '../errors.js'

export class FuseError extends EncfsError {}
