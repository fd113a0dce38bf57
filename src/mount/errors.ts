import { EncfsError } from '../errors/encfs-error.js'

export class MountError extends EncfsError {}
