import { EncfsError } from '../errors/encfs-error.js'

/** A program encfs runs (cryptsetup, mount, openssl, mkfs.ext4...) that is missing or failed. */
export class ProcessError extends EncfsError {}
