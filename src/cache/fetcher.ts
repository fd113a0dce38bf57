import type { Logger } from '../log/logger.js'
import { readInto, type RangeSource } from '../storage/range-source.js'
import { viewOf, type Extent } from './extent.js'
import type { FetchScheduler } from './fetch-scheduler.js'
import type { MemoryBudget } from './memory-budget.js'
import type { RangeIndex } from './range-index.js'
import type { CacheCounters } from './stats.js'

/**
 * The transfers: one fetch per range from the source below, however many readers wait for it,
 * run when the scheduler says. A fetch that arrives is cached and published to the native
 * mirror; one whose range was dropped meanwhile gives its buffer back; a failed one leaves
 * nothing cached, so the next reader of the range tries again.
 */
export class Fetcher {
  constructor(
    private readonly inner: RangeSource,
    private readonly parts: {
      index: RangeIndex
      budget: MemoryBudget
      scheduler: FetchScheduler
      counters: CacheCounters
      logger: Logger
      closed(): boolean
      /** Takes a range out of the index and of its stream's readahead. */
      remove(e: Extent): void
    },
  ) {}

  /** Sets `e.promise` (settles when the bytes are there or the fetch failed) and hands the transfer to the scheduler. */
  start(e: Extent, prefetch: boolean): void {
    let resolve!: () => void
    let reject!: (err: unknown) => void
    e.promise = new Promise<void>((res, rej) => {
      resolve = res
      reject = rej
    })
    // A prefetch nobody waits for must not become an unhandled rejection.
    e.promise.catch(() => {})
    e.abort = new AbortController()
    const { scheduler, budget, counters } = this.parts
    const transfer = () => {
      if (e.prefetched) counters.prefetches++
      else counters.fetches++
      const target = viewOf(e, e.buffer!)
      readInto(this.inner, e.start, target, e.abort!.signal).then(
        () => {
          this.fetched(e, target)
          resolve()
          // Unpinned (readahead, or released while in flight) or dropped: room is free now.
          if (e.gone || e.pins === 0) budget.wake()
          scheduler.pump()
        },
        (err: unknown) => {
          this.failed(e, err, prefetch)
          reject(err)
          budget.wake()
          scheduler.pump()
        },
      )
    }
    scheduler.submit(e, transfer, prefetch)
  }

  private fetched(e: Extent, target: Buffer): void {
    this.parts.scheduler.finished(e, true)
    e.abort = undefined
    if (e.gone) {
      if (!this.parts.closed()) this.parts.budget.release(e)
      return
    }
    this.parts.counters.bytesFetched += e.length
    e.data = target
    this.parts.index.publish(e)
  }

  private failed(e: Extent, err: unknown, prefetch: boolean): void {
    this.parts.scheduler.finished(e, false)
    e.abort = undefined
    this.parts.remove(e)
    if (!this.parts.closed()) this.parts.budget.release(e)
    if (prefetch) this.parts.logger.debug({ err, offset: e.start, length: e.length }, 'readahead failed')
  }
}
