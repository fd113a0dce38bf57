import { EncfsError } from '../errors/encfs-error.js'

export class AttestationError extends EncfsError {}
