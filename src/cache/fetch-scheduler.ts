import type { Extent } from './extent.js'

/** A random reader counts as active this long after its last fetch... */
const RANDOM_ACTIVE_MS = 200
/** ...and readahead is held to this many requests meanwhile. */
const SHARED_PREFETCH = 3

/**
 * When fetches run: at most `concurrency` requests to the source at once, demand fetches first,
 * readahead with what is left (a quarter of the slots, up to 4, is kept for demand), and only a
 * few readahead requests while a random reader is active: storage answers a 4 KiB read late
 * behind many 8 MiB transfers (docs/data-path.md, "Scheduling").
 */
export class FetchScheduler {
  readonly concurrency: number
  private readonly prefetchConcurrency: number
  private running = 0
  private readonly demandQueue: (() => void)[] = []
  private readonly prefetchQueue: Extent[] = []
  /** When a random read last had to fetch (performance.now()). */
  private randomDemandAt = Number.NEGATIVE_INFINITY

  constructor(concurrency: number) {
    this.concurrency = Math.max(1, concurrency)
    this.prefetchConcurrency = Math.max(1, this.concurrency - Math.min(4, Math.floor(this.concurrency / 4)))
  }

  /** Queues `start` (the transfer of `e`); a queued readahead keeps it in `e.queued` until it runs. */
  submit(e: Extent, start: () => void, prefetch: boolean): void {
    const run = () => {
      e.queued = undefined
      this.running++
      start()
    }
    if (prefetch) {
      e.queued = run
      this.prefetchQueue.push(e)
    } else {
      this.demandQueue.push(run)
    }
    this.pump()
  }

  /** A demand read waits for a queued readahead: it runs now, as a demand fetch. False when it has started already. */
  promote(e: Extent): boolean {
    const i = this.prefetchQueue.indexOf(e)
    if (i < 0 || !e.queued) return false
    this.prefetchQueue.splice(i, 1)
    const run = e.queued
    e.queued = undefined
    this.demandQueue.push(run)
    this.pump()
    return true
  }

  /** A queued readahead nobody wants any more leaves the queue without running. */
  unqueue(e: Extent): void {
    const i = this.prefetchQueue.indexOf(e)
    if (i >= 0) this.prefetchQueue.splice(i, 1)
    e.queued = undefined
  }

  /** A transfer ended (either way): its slot is free; pump() starts the next. */
  finished(): void {
    this.running--
  }

  noteRandomDemand(): void {
    this.randomDemandAt = performance.now()
  }

  pump(): void {
    while (this.demandQueue.length > 0 && this.running < this.concurrency) this.demandQueue.shift()!()
    const limit = performance.now() - this.randomDemandAt < RANDOM_ACTIVE_MS ? Math.min(this.prefetchConcurrency, SHARED_PREFETCH) : this.prefetchConcurrency
    while (this.prefetchQueue.length > 0 && this.running < limit && this.demandQueue.length === 0) {
      const e = this.prefetchQueue.shift()!
      e.queued!()
    }
  }

  clear(): void {
    this.demandQueue.length = 0
    this.prefetchQueue.length = 0
  }
}
