import type { Extent } from './extent.js'

/**
 * The cache's memory: cached, in-flight and spare bytes never exceed the budget. Evicted buffers
 * of fetch sizes are kept (still counted) for the fetches that follow, because writing into
 * fresh multi-MiB allocations page-faults on every page (docs/data-path.md, "Memory"). A miss
 * that finds no room waits here until a range is released.
 */
export class MemoryBudget {
  /** Cached, in-flight and spare bytes now, and their high-water mark. */
  used = 0
  peak = 0
  /** Buffers of evicted extents, by size, for the next fetch of that size. */
  private readonly spare = new Map<number, Buffer[]>()
  private spareBytes = 0
  private readonly waiters: (() => void)[] = []

  constructor(readonly limit: number) {}

  /** A buffer of `length` bytes for a new range: a spare one of that size, else a new one (counted). */
  take(length: number): Buffer {
    const pool = this.spare.get(length)
    const b = pool?.pop()
    if (b) {
      this.spareBytes -= length
      return b
    }
    this.used += length
    this.notePeak()
    return Buffer.allocUnsafe(length)
  }

  /** A buffer handed over by a writer becomes a range's memory as it is. */
  adopt(b: Buffer): Buffer {
    this.used += b.length
    this.notePeak()
    return b
  }

  private notePeak(): void {
    this.peak = Math.max(this.peak, this.used)
  }

  /** Gives an extent's buffer back: kept for reuse when it is a fetch-sized one, else freed. */
  release(e: Extent, reuse = false): void {
    const b = e.buffer
    e.buffer = undefined
    e.data = undefined
    if (!b) return
    if (reuse && b.length >= 256 * 1024) {
      const pool = this.spare.get(b.length) ?? []
      pool.push(b)
      this.spare.set(b.length, pool)
      this.spareBytes += b.length
    } else this.used -= b.length
  }

  /**
   * Evicts what sequential readers have finished with, then least-recently-used ranges nobody
   * is reading (`candidates` in that order, `evict` takes one out and releases it for reuse),
   * until `bytes` fit. Readers only ever get copies, so a reused buffer is never seen twice.
   */
  makeRoom(bytes: number, candidates: Iterable<Extent>, evictable: (e: Extent) => boolean, evict: (e: Extent) => void): boolean {
    const fits = () => (this.spare.get(bytes)?.length ?? 0) > 0 || this.used - this.spareBytes + bytes <= this.limit
    if (fits()) return this.trimSpare(bytes)
    for (const pass of [true, false]) {
      for (const e of candidates) {
        if (fits()) break
        if ((pass && !e.consumed) || !evictable(e)) continue
        evict(e)
      }
    }
    return fits() && this.trimSpare(bytes)
  }

  /** Frees spare buffers (other sizes first) until a new `bytes` allocation fits the budget. */
  private trimSpare(bytes: number): boolean {
    if ((this.spare.get(bytes)?.length ?? 0) > 0) return true
    for (const [size, pool] of this.spare) {
      while (pool.length > 0 && this.used + bytes > this.limit) {
        pool.pop()
        this.used -= size
        this.spareBytes -= size
      }
      if (pool.length === 0) this.spare.delete(size)
    }
    return this.used + bytes <= this.limit
  }

  /** Resolves when a range is released or becomes evictable (wake), or the cache closes (wakeAll). */
  wait(): Promise<void> {
    return new Promise<void>((resolve) => this.waiters.push(resolve))
  }

  wake(): void {
    const w = this.waiters.shift()
    if (w) w()
  }

  /** The cache closed: nothing is held any more, every waiter is let go. */
  clear(): void {
    this.used = 0
    this.spare.clear()
    this.spareBytes = 0
    for (const w of this.waiters.splice(0)) w()
  }
}
