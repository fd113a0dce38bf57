import { EncfsError } from '../errors/encfs-error.js'

/** A dm-verity superblock or hash tree that encfs cannot use, or a root hash that does not match it. */
export class VerityError extends EncfsError {}

/** One range of the verified data area (bytes, end exclusive) that failed verification. */
export interface BadRange {
  start: number
  end: number
}

/**
 * A read that touched data the hash tree does not vouch for: a data block whose hash differs, or
 * a hash block that does not chain up to the root (then every data block under it is unverifiable).
 * `bad` lists every such range found in the read, so callers can still serve the bytes around them.
 */
export class VerityMismatchError extends VerityError {
  readonly bad: BadRange[]

  constructor(message: string, bad: BadRange[]) {
    super('VERITY_MISMATCH', message)
    this.bad = bad
  }

  /** True when [start, end) overlaps a failed range. */
  touches(start: number, end: number): boolean {
    return this.bad.some((r) => r.start < end && start < r.end)
  }
}
