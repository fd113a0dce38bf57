import { EncfsError } from '../errors.js'

export class MountError extends EncfsError {}
