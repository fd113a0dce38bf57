import type { Logger } from '../log/logger.js'

/** Distinct bad blocks remembered per kind (8 bytes each, about 0.5 MiB); past it, failures are counted, not told apart. */
export const MAX_TRACKED_BAD_BLOCKS = 65_536
/** Per-block error lines per minute after the first (loud) one; the rest are summed up. */
const LINES_PER_WINDOW = 10
const WINDOW_MS = 60_000

export interface BadBlockOptions {
  maxTracked?: number
  linesPerWindow?: number
  windowMs?: number
}

/**
 * What dm-verity failures a source has seen, for /status and the log, within fixed bounds: an
 * image modified (or replaced) over millions of blocks logged one error line per 4 KiB block
 * and kept every block number in a set that grew with it. The first failure is logged loudly;
 * then at most LINES_PER_WINDOW lines a minute, and a line saying how many were not told.
 */
export class BadBlockLedger {
  private readonly seen = { data: new Set<number>(), hash: new Set<number>() }
  /** New failures found once the set was full (possibly of blocks counted before). */
  private readonly untracked = { data: 0, hash: 0 }
  private firstFailure?: string
  private windowStart = 0
  private linesInWindow = 0
  private suppressed = 0
  private readonly maxTracked: number
  private readonly linesPerWindow: number
  private readonly windowMs: number

  constructor(
    private readonly logger: Logger,
    o: BadBlockOptions = {},
  ) {
    this.maxTracked = o.maxTracked ?? MAX_TRACKED_BAD_BLOCKS
    this.linesPerWindow = o.linesPerWindow ?? LINES_PER_WINDOW
    this.windowMs = o.windowMs ?? WINDOW_MS
  }

  /**
   * Notes block `key` of `kind` as bad; logs it (loud when first, `loud` says how) unless it was
   * noted before or the log's budget is spent. Returns false when it was already known.
   */
  note(kind: 'data' | 'hash', key: number, message: string, fields: Record<string, unknown>, loud: string): boolean {
    const set = this.seen[kind]
    if (set.has(key)) return false
    if (set.size < this.maxTracked) set.add(key)
    else this.untracked[kind]++
    if (!this.firstFailure) {
      this.firstFailure = message
      this.logger.error(fields, loud)
      return true
    }
    this.logLimited(fields, message)
    return true
  }

  stats(): { badDataBlocks: number; badHashBlocks: number; firstFailure?: string } {
    return {
      badDataBlocks: this.seen.data.size + this.untracked.data,
      badHashBlocks: this.seen.hash.size + this.untracked.hash,
      ...(this.firstFailure ? { firstFailure: this.firstFailure } : {}),
    }
  }

  /** Says how many failures were not logged one by one (at close, so the count is not lost). */
  flush(): void {
    if (this.suppressed === 0) return
    this.logger.error(
      { notLogged: this.suppressed },
      `${this.suppressed} more dm-verity failure(s) were not logged one by one (at most ${this.linesPerWindow} lines a minute); /status counts them all`,
    )
    this.suppressed = 0
  }

  private logLimited(fields: Record<string, unknown>, message: string): void {
    const now = Date.now()
    if (now - this.windowStart >= this.windowMs) {
      this.flush()
      this.windowStart = now
      this.linesInWindow = 0
    }
    if (this.linesInWindow < this.linesPerWindow) {
      this.linesInWindow++
      this.logger.error(fields, message)
    } else this.suppressed++
  }
}
