import type { Extent } from './extent.js'
import { ReadaheadThrottle } from './readahead-throttle.js'

/** A random reader counts as active this long after its last fetch; meanwhile ReadaheadThrottle bounds readahead. */
const RANDOM_ACTIVE_MS = 200

/**
 * When fetches run: at most `concurrency` requests to the source at once, demand fetches first,
 * readahead with what is left (a quarter of the slots, up to 4, is kept for demand), and while a
 * random reader is active, as many readahead requests as the random reader's latency allows
 * (ReadaheadThrottle; docs/data-path.md, "Scheduling").
 */
export class FetchScheduler {
  readonly concurrency: number
  private readonly prefetchConcurrency: number
  private running = 0
  private readonly demandQueue: (() => void)[] = []
  private readonly prefetchQueue: Extent[] = []
  /** When a random read last had to fetch (performance.now()). */
  private randomDemandAt = Number.NEGATIVE_INFINITY
  /** Transfers under way: whether each runs as readahead, since when, and how much readahead ran when it started. */
  private readonly started = new Map<Extent, { prefetch: boolean; at: number; beside: number }>()
  private runningPrefetch = 0
  /** Random readers' fetches, whose latency steers the throttle. */
  private readonly randomFetches = new WeakSet<Extent>()
  /** Queued readahead a reader asked for meanwhile: it runs as a demand fetch. */
  private readonly promoted = new WeakSet<Extent>()
  readonly throttle: ReadaheadThrottle

  constructor(concurrency: number) {
    this.concurrency = Math.max(1, concurrency)
    this.prefetchConcurrency = Math.max(1, this.concurrency - Math.min(4, Math.floor(this.concurrency / 4)))
    this.throttle = new ReadaheadThrottle(this.prefetchConcurrency)
  }

  /** Queues `start` (the transfer of `e`); a queued readahead keeps it in `e.queued` until it runs. */
  submit(e: Extent, start: () => void, prefetch: boolean): void {
    const run = () => {
      // A queued readahead that a reader promoted runs as a demand fetch.
      const asPrefetch = prefetch && !this.promoted.has(e)
      this.promoted.delete(e)
      e.queued = undefined
      this.running++
      if (asPrefetch) this.runningPrefetch++
      this.started.set(e, { prefetch: asPrefetch, at: performance.now(), beside: this.runningPrefetch })
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
    this.promoted.add(e)
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

  /** The transfer of `e` ended (either way): its slot is free; pump() starts the next. `ok`: its bytes arrived. */
  finished(e: Extent, ok: boolean): void {
    this.running--
    const s = this.started.get(e)
    if (!s) return
    this.started.delete(e)
    if (s.prefetch) this.runningPrefetch--
    if (ok && this.randomFetches.has(e)) this.throttle.observe(performance.now() - s.at, s.at, s.beside)
  }

  /** `e` is a random reader's fetch: the reader is active, and the fetch's latency is measured. */
  noteRandomDemand(e: Extent): void {
    this.randomDemandAt = performance.now()
    this.randomFetches.add(e)
  }

  pump(): void {
    while (this.demandQueue.length > 0 && this.running < this.concurrency) this.demandQueue.shift()!()
    // Readahead is bounded by its own count while a random reader is active (it was bounded by all
    // requests before, so that four random fetches in flight stopped readahead altogether).
    const throttled = performance.now() - this.randomDemandAt < RANDOM_ACTIVE_MS
    while (
      this.prefetchQueue.length > 0 &&
      this.running < this.prefetchConcurrency &&
      (!throttled || this.runningPrefetch < this.throttle.limit) &&
      this.demandQueue.length === 0
    ) {
      const e = this.prefetchQueue.shift()!
      e.queued!()
    }
  }

  clear(): void {
    this.demandQueue.length = 0
    this.prefetchQueue.length = 0
  }
}
