import { EncfsError } from '../errors.js'

export class KeyError extends EncfsError {}
