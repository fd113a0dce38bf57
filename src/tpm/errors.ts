import { EncfsError } from '../errors/encfs-error.js'

/** The TPM could not be reached, refused a command, or handed over a structure that cannot be read. */
export class TpmError extends EncfsError {}
