import { EncfsError } from '../errors.js'

export class AttestationError extends EncfsError {}
