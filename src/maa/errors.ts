import { EncfsError } from '../errors/encfs-error.js'

/** MAA refused the evidence, was unavailable, or answered without a token. */
export class MaaError extends EncfsError {}
