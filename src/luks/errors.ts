import { EncfsError } from '../errors/encfs-error.js'

export class LuksError extends EncfsError {}
