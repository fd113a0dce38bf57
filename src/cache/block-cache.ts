import type { Logger } from '../log/logger.js'
import { silentLogger } from '../log/logger.js'
import { checkRange, readByFilling, type RangeSource } from '../storage/range-source.js'
import type { CacheMirror, NativeView } from '../storage/native-view.js'
import { AccessPattern, RANDOM_UNIT, type Access, type Stream } from './access-pattern.js'
import { alignDown, alignUp, type Extent } from './extent.js'
import { RangeIndex } from './range-index.js'
import { MemoryBudget } from './memory-budget.js'
import { FetchScheduler } from './fetch-scheduler.js'
import { Readahead } from './readahead.js'
import { Fetcher } from './fetcher.js'
import { newCounters, type BlockCacheStats } from './stats.js'

export type { BlockCacheStats } from './stats.js'

export interface BlockCacheOptions {
  /** Largest fetch, and the alignment no cached range crosses. */
  blockSize?: number
  /** Upper bound for cached plus in-flight memory. */
  memoryBytes?: number
  /** Most blocks fetched ahead of a sequential reader. */
  readaheadBlocks?: number
  /** Most concurrent requests to the inner source; a quarter (up to 4) is kept for demand reads, so readahead never queues a random reader. */
  concurrency?: number
  /** Read-write: the longest a flush (an fsync) waits for storage (default: one storage retry budget, 60 s). */
  flushTimeoutMs?: number
  /** Read-write: the same while storage is known down (a write-back failed in the last 10 s); default 5 s. */
  downFlushTimeoutMs?: number
  /** Read-write: dirty data older than this is written back without waiting for a flush (default 5000 ms). */
  writeBackIntervalMs?: number
  logger?: Logger
}

// The defaults and why: docs/data-path.md, "The block cache and the access pattern".
export const DEFAULT_BLOCK_SIZE = 8 * 1024 * 1024
export const DEFAULT_MEMORY_BYTES = 128 * 1024 * 1024
export const DEFAULT_READAHEAD_BLOCKS = 8
export const DEFAULT_CONCURRENCY = 12

/**
 * A cache of ranges over a RangeSource with one fetch per range however many readers miss it
 * at once. Random reads fetch only the 4 KiB units they touch; a real sequential streak fetches
 * growing chunks up to the block size and reads ahead (AccessPattern, Readahead). Memory (cached
 * plus in flight) never exceeds the budget: a demand miss that finds everything pinned waits for
 * room instead of growing. Optionally mirrored to a native table from which the libfuse3 data
 * plane serves hits without entering JavaScript (RangeIndex). Its parts: the range index,
 * the memory budget, the fetch scheduler and fetcher, readahead; write-back in WritableBlockCache.
 */
export class BlockCache implements RangeSource {
  readonly size: number
  readonly blockSize: number
  readonly memoryBytes: number
  protected readonly logger: Logger
  protected readonly index: RangeIndex
  protected readonly budget: MemoryBudget
  protected readonly scheduler: FetchScheduler
  protected readonly fetcher: Fetcher
  protected readonly readahead: Readahead
  private readonly pattern: AccessPattern
  protected closed = false
  protected readonly counters = newCounters()

  /** A read-only cache (also over a writable source: it never writes); cacheOver() picks. */
  constructor(
    private readonly inner: RangeSource,
    o: BlockCacheOptions = {},
  ) {
    this.size = inner.size
    this.blockSize = o.blockSize ?? DEFAULT_BLOCK_SIZE
    if (!Number.isInteger(this.blockSize) || this.blockSize < 4096 || this.blockSize % 512 !== 0) {
      throw new RangeError(`block size must be a multiple of 512 bytes, at least 4096, got ${this.blockSize}`)
    }
    // A request spans at most a few blocks; keep room for them and one more.
    this.memoryBytes = Math.max(o.memoryBytes ?? DEFAULT_MEMORY_BYTES, 4 * this.blockSize)
    const readahead = Math.max(0, Math.min(o.readaheadBlocks ?? DEFAULT_READAHEAD_BLOCKS, Math.floor(this.memoryBytes / this.blockSize) - 2))
    this.logger = o.logger ?? silentLogger
    this.index = new RangeIndex(this.size, this.blockSize)
    this.budget = new MemoryBudget(this.memoryBytes)
    this.scheduler = new FetchScheduler(o.concurrency ?? DEFAULT_CONCURRENCY)
    this.readahead = new Readahead({
      size: this.size,
      locate: (p) => this.index.locate(p),
      fetchAhead: (free, p, end, unit, stream) => this.newFetch(free, p, end, unit, true, stream),
      cancel: (e) => this.cancel(e),
    })
    this.fetcher = new Fetcher(inner, {
      index: this.index,
      budget: this.budget,
      scheduler: this.scheduler,
      counters: this.counters,
      logger: this.logger,
      closed: () => this.closed,
      remove: (e) => this.remove(e),
    })
    this.pattern = new AccessPattern({
      blockSize: this.blockSize,
      maxWindow: readahead * this.blockSize,
      onDrop: (s) => {
        if (this.readahead.drop(s)) this.budget.wake()
      },
    })
  }

  stats(): BlockCacheStats {
    const { cached, inFlight } = this.index.counts()
    return { ...this.counters, inFlight, cachedBlocks: cached, bytes: this.budget.used, peakBytes: this.budget.peak, dirtyBlocks: 0 }
  }

  /** Takes a range out of the index and out of its stream's readahead. */
  protected remove(e: Extent): void {
    if (e.gone) return
    this.readahead.forget(e)
    this.index.remove(e)
  }

  // ---- reading ----

  read(offset: number, length: number, signal?: AbortSignal): Promise<Buffer> {
    return readByFilling(this, offset, length, signal)
  }

  async readInto(offset: number, target: Buffer, signal?: AbortSignal): Promise<void> {
    return this.fill(offset, target.length, target, signal)
  }

  /**
   * Makes sure [offset, offset + length) is cached, as a read of it would (the access pattern
   * and readahead see it), without copying it anywhere: the native data plane serves it next.
   */
  load(offset: number, length: number, signal?: AbortSignal): Promise<void> {
    return this.fill(offset, length, undefined, signal)
  }

  private async fill(offset: number, length: number, target: Buffer | undefined, signal?: AbortSignal): Promise<void> {
    checkRange(this.size, offset, length)
    if (this.closed) throw new Error('block cache is closed')
    if (length === 0) return
    const access = this.pattern.observe(offset, length)
    const end = offset + length
    const copy = (e: Extent) => {
      if (!target) return
      const from = Math.max(offset, e.start)
      const to = Math.min(end, e.start + e.length)
      e.data!.copy(target, from - offset, from - e.start, to - e.start)
    }
    // Start every missing range at once, then copy as they arrive; but only if they all fit now:
    // waiting for room while holding pins deadlocks with other readers doing the same.
    const pinned: Extent[] = []
    let p = offset
    let complete = true
    while (p < end) {
      const e = this.pinAt(p, end, access)
      if (!e) {
        complete = false
        break
      }
      pinned.push(e)
      p = e.start + e.length
    }
    this.readAhead(access)
    if (complete) {
      try {
        for (const e of pinned) {
          if (!e.data) await e.promise
          copy(e)
        }
      } finally {
        for (const e of pinned) this.unpin(e, access, end, target !== undefined)
      }
    } else {
      for (const e of pinned) this.unpin(e, access, end, false)
      // No room for all of it now: one range at a time, waiting for room for each.
      for (p = offset; p < end; ) {
        const e = await this.pinWaiting(p, end, access, signal)
        try {
          if (!e.data) await e.promise
          copy(e)
        } finally {
          this.unpin(e, access, end, target !== undefined)
        }
        p = e.start + e.length
      }
    }
    this.counters.bytesRead += length
  }

  /**
   * Reads served elsewhere (the native data plane's cache hits), reported so that the access
   * pattern, readahead and eviction order see them as if they had been read here. A negative
   * length marks a read that load() has already counted: only the eviction order learns of it.
   */
  noteReads(ranges: ArrayLike<number>): void {
    if (this.closed) return
    for (let i = 0; i + 1 < ranges.length; i += 2) {
      const offset = ranges[i]!
      const loaded = ranges[i + 1]! < 0
      const length = Math.abs(ranges[i + 1]!)
      if (length === 0 || offset + length > this.size) continue
      const access = loaded ? this.pattern.peek(offset, length) : this.pattern.observe(offset, length)
      const end = offset + length
      for (let p = offset; p < end; ) {
        const at = this.index.locate(p)
        if (!('extent' in at)) {
          p = at.hi
          continue
        }
        const e = at.extent
        if (e.data && !loaded) this.counters.hits++
        this.readahead.claim(e)
        this.afterRead(e, access, end)
        p = e.start + e.length
      }
      if (loaded) continue
      this.counters.bytesRead += length
      this.readAhead(access)
    }
  }

  /** The extent at `p`, pinned: cached, on the way, or a new fetch; undefined when there is no room now. */
  private pinAt(p: number, end: number, access: Access): Extent | undefined {
    const at = this.index.locate(p)
    if ('extent' in at) {
      const e = at.extent
      // Read at last: a queued readahead runs now, as a demand fetch.
      this.readahead.claim(e)
      if (e.queued) this.scheduler.promote(e)
      if (e.data) this.counters.hits++
      this.index.touch(e)
      e.pins++
      return e
    }
    const e = this.newFetch(at, p, end, access.unit, false)
    if (!e) return undefined
    if (!access.sequential) this.scheduler.noteRandomDemand(e)
    this.counters.misses++
    e.pins++
    return e
  }

  private async pinWaiting(p: number, end: number, access: Access, signal?: AbortSignal): Promise<Extent> {
    for (;;) {
      const e = this.pinAt(p, end, access)
      if (e) return e
      signal?.throwIfAborted()
      await this.waitForRoom()
    }
  }

  /** Waits until a range is released or evictable, after asking for dirty data to be written back. */
  protected async waitForRoom(): Promise<void> {
    this.relieve()
    await this.budget.wait()
    if (this.closed) throw new Error('block cache is closed')
  }

  /** Memory is short: a read-only cache has nothing to write back to free it. */
  protected relieve(): void {}

  /** `read`: the bytes were read now (a load() leaves them for the native reader, who reports its read). */
  private unpin(e: Extent, access: Access, readEnd: number, read: boolean): void {
    e.pins--
    if (read) this.afterRead(e, access, readEnd)
    if (e.pins === 0) this.budget.wake()
  }

  /** A sequential reader that has read to the end of a range will not come back: evict it first. */
  private afterRead(e: Extent, access: Access, readEnd: number): void {
    if (access.sequential && readEnd >= e.start + e.length) e.consumed = true
    else if (!access.sequential) this.index.touch(e)
  }

  /**
   * Creates and starts (or queues) a fetch from `p` (4 KiB-aligned) to the end of the read and on
   * to a `unit` boundary at least half a unit away, within the free interval; undefined when there
   * is no room now. Ending on unit boundaries keeps a stream's later GETs aligned with the blob's
   * blocks: Azurite spent three times the CPU per byte on 1-4 MiB ranges as on aligned 8 MiB ones.
   */
  private newFetch(free: { lo: number; hi: number }, p: number, end: number, unit: number, prefetch: boolean, stream?: Stream): Extent | undefined {
    const start = Math.max(free.lo, alignDown(p, RANDOM_UNIT))
    const stop = Math.min(free.hi, this.size, Math.max(alignUp(end, RANDOM_UNIT), alignUp(start + unit / 2, unit)))
    const length = stop - start
    if (!this.makeRoom(length, prefetch)) return undefined
    const e = this.newExtent(start, length, prefetch)
    if (stream) this.readahead.track(e, stream)
    this.fetcher.start(e, prefetch)
    return e
  }

  protected newExtent(start: number, length: number, prefetch: boolean, adopt?: Buffer): Extent {
    const e: Extent = { start, length, pins: 0, prefetched: prefetch, consumed: false, uploading: 0, gone: false, promise: Promise.resolve() }
    e.buffer = adopt ? this.budget.adopt(adopt) : this.budget.take(length)
    this.index.insert(e)
    return e
  }

  /** Keeps a sequential stream's window fetched ahead. */
  private readAhead(access: Access): void {
    if (!this.closed) this.readahead.extend(access)
  }

  /** Readahead nobody will read: out of the index at once (a reader arriving now starts a fetch of its own); dropped if queued, else aborted. */
  private cancel(e: Extent): void {
    this.counters.cancelled++
    this.remove(e)
    if (e.queued) {
      this.scheduler.unqueue(e)
      this.budget.release(e)
    } else e.abort?.abort() // its buffer is released when the request settles
  }

  /** Room for `bytes` more, evicting what may go (readahead is never evicted for more readahead); false when there is none now. */
  protected makeRoom(bytes: number, forPrefetch: boolean): boolean {
    return this.budget.makeRoom(
      bytes,
      this.index.lru,
      (e) => e.pins === 0 && e.data !== undefined && !e.dirty && e.uploading === 0 && !(forPrefetch && e.prefetched),
      (e) => {
        this.remove(e)
        this.counters.evictions++
        this.budget.release(e, true)
      },
    )
  }

  // ---- the native mirror ----

  nativeView(): NativeView {
    return { cache: this, offset: 0 }
  }

  /** Publishes every cached range to `mirror` and keeps it up to date until detachMirror(). */
  attachMirror(mirror: CacheMirror): void {
    this.index.attachMirror(mirror)
  }

  detachMirror(): void {
    this.index.detachMirror()
  }

  async close(): Promise<void> {
    this.closed = true
    this.index.clear()
    this.readahead.clear()
    this.budget.clear()
    this.scheduler.clear()
    await this.inner.close()
  }
}
