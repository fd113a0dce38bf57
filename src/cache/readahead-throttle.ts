/** The floor latency is the best of this period and the last, so that it follows storage if storage slows down. */
const FLOOR_PERIOD_MS = 5000
/** Readahead requests allowed beside a random reader before anything has been measured. */
export const THROTTLE_START = 3

/**
 * How many readahead requests may run while a random reader is active. A fixed share is wrong
 * on one path or the other: where storage is one busy process, a 4 KiB GET waits behind every
 * 8 MiB transfer, and where each connection has its own link, readahead costs the random reader
 * nothing and a small share only starves the sequential one (docs/data-path.md, "Scheduling").
 * So the share follows what the random reader's own fetches take against the best they took
 * lately, as TCP Vegas reads a full path from delay rather than loss: one more request after
 * `limit` fetches that took at most twice the floor, half as many when one took over four times
 * it (once per congestion event: fetches that started before a halving do not halve again). Both
 * bounds allow 1 ms more, so that scheduling noise over a sub-millisecond floor (loopback) does
 * not read as congestion.
 */
export class ReadaheadThrottle {
  private current: number
  private good = 0
  private lastMin = Number.POSITIVE_INFINITY
  private periodMin = Number.POSITIVE_INFINITY
  private periodStart: number
  private halvedAt = Number.NEGATIVE_INFINITY

  constructor(
    private readonly max: number,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.current = Math.max(1, Math.min(max, THROTTLE_START))
    this.periodStart = now()
  }

  get limit(): number {
    return this.current
  }

  /** The best latency of a random fetch lately (ms); Infinity before the first. */
  get floorMs(): number {
    return Math.min(this.lastMin, this.periodMin)
  }

  /** A random reader's fetch took `ms`; it started at `startedAt` with `readahead` readahead requests running. */
  observe(ms: number, startedAt: number, readahead: number): void {
    const t = this.now()
    if (t - this.periodStart >= FLOOR_PERIOD_MS) {
      this.lastMin = this.periodMin
      this.periodMin = Number.POSITIVE_INFINITY
      this.periodStart = t
    }
    const floor = this.floorMs
    this.periodMin = Math.min(this.periodMin, ms)
    // Alone, a fetch says what storage can do, not what readahead costs it.
    if (readahead === 0 || !Number.isFinite(floor)) return
    if (ms > 4 * floor + 1) {
      this.good = 0
      if (startedAt < this.halvedAt) return
      this.current = Math.max(1, Math.floor(this.current / 2))
      this.halvedAt = t
    } else if (ms <= 2 * floor + 1 && ++this.good >= this.current) {
      this.good = 0
      this.current = Math.min(this.max, this.current + 1)
    }
  }
}
