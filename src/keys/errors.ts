import { EncfsError } from '../errors/encfs-error.js'

export class KeyError extends EncfsError {}
