import { EncfsError } from '../errors/encfs-error.js'

export class StorageError extends EncfsError {}
