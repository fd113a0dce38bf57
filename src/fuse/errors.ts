import { EncfsError } from '../errors/encfs-error.js'

export class FuseError extends EncfsError {}
