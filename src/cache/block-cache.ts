import type { Logger } from '../log/logger.js'
import { silentLogger } from '../log/logger.js'
import { checkRange, isWritable, readByFilling, readInto, type RangeSource, type WritableRangeSource } from '../storage/range-source.js'
import { StorageError } from '../storage/errors.js'
import { STORAGE_RETRY } from '../storage/retry.js'
import { AccessPattern, RANDOM_UNIT, type Access, type Stream } from './access-pattern.js'
import type { CacheMirror, NativeView } from '../storage/native-view.js'

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

export interface BlockCacheStats {
  /** Reads (or parts of reads) found cached or already on the way. */
  hits: number
  /** Ranges a read had to fetch. */
  misses: number
  fetches: number
  prefetches: number
  /** Readahead dropped before it was used (its stream went away). */
  cancelled: number
  bytesFetched: number
  /** Bytes handed to readers (the denominator of read amplification). */
  bytesRead: number
  evictions: number
  inFlight: number
  /** Cached ranges (whole blocks for sequential readers, a few KiB for random ones). */
  cachedBlocks: number
  /** Cached + in-flight bytes now (kept spare buffers included), and their high-water mark. */
  bytes: number
  peakBytes: number
  dirtyBlocks: number
  bytesWritten: number
  writeBacks: number
  writeFailures: number
}

// Block size 8 MiB: the largest single ranged GET, reached after a sequential streak of 16 MiB
// (bench/run.ts; blobfuse2 uses 16 MiB blocks). 128 MiB bounds the cache per filesystem,
// in-flight readahead included. See docs/data-path.md for the measurements.
export const DEFAULT_BLOCK_SIZE = 8 * 1024 * 1024
export const DEFAULT_MEMORY_BYTES = 128 * 1024 * 1024
export const DEFAULT_READAHEAD_BLOCKS = 8
export const DEFAULT_CONCURRENCY = 12
/** A random reader counts as active this long after its last fetch... */
const RANDOM_ACTIVE_MS = 200
/** ...and readahead is held to this many requests meanwhile. */
const SHARED_PREFETCH = 3
/** Azure's largest Put Page. */
const MAX_WRITE = 4 * 1024 * 1024
const SECTOR = 512
/** After a write-back failed, storage is taken for down this long: flushes wait for it only downFlushTimeoutMs. */
const WRITES_DOWN_MS = 10_000
const DOWN_FLUSH_TIMEOUT_MS = 5_000

type Piece = { at: number; parts: { e: Extent; lo: number; hi: number }[]; length: number }

/**
 * A cached range of the source. Ranges never overlap and never cross a block boundary; their
 * edges are multiples of 512 bytes (or the end of the source), so page-blob write-backs align.
 */
interface Extent {
  start: number
  length: number
  /** The bytes, once fetched (or written); a view of `buffer`. */
  data?: Buffer
  buffer?: Buffer
  promise: Promise<void>
  /** Readers copying out of it, or writers into it: never evicted while > 0. */
  pins: number
  /** Fetched ahead and not read yet: only evicted by demand, never by more readahead. */
  prefetched: boolean
  /** The stream it was fetched ahead of; its readahead is dropped with the stream. */
  stream?: number
  /** Read by a sequential stream that has moved past it: evicted before anything else. */
  consumed: boolean
  abort?: AbortController
  /** Queued and not started: dropping it costs nothing. */
  queued?: () => void
  /** Bytes written and not yet on the source (extent-relative); never evicted while set. */
  dirty?: { lo: number; hi: number }
  /** Write-backs of this range under way; never evicted while > 0 (a failure re-dirties it). */
  uploading: number
  /** The last write-back of this range: the next one waits for it, so storage ends with the newest bytes. */
  upload?: Promise<void>
  gone: boolean
}

const alignDown = (n: number, a: number) => Math.floor(n / a) * a
const alignUp = (n: number, a: number) => Math.ceil(n / a) * a

/**
 * A cache of ranges over a RangeSource with one fetch per range however many readers miss it
 * at once. Random reads fetch only the 4 KiB units they touch; a real sequential streak fetches
 * growing chunks up to the block size and reads ahead (AccessPattern). Memory (cached plus in
 * flight) never exceeds the budget: a demand miss that finds everything pinned waits for room
 * instead of growing. Optionally mirrored to a native table from which the libfuse3 data plane
 * serves hits without entering JavaScript (see native-view.ts).
 */
export class BlockCache implements RangeSource {
  readonly size: number
  readonly blockSize: number
  readonly memoryBytes: number
  protected readonly concurrency: number
  private readonly prefetchConcurrency: number
  protected readonly logger: Logger
  /** Extents of each block, sorted by start. */
  private readonly slots = new Map<number, Extent[]>()
  /** Eviction order: least recently used first. */
  private readonly lru = new Set<Extent>()
  /** Cached, in-flight and spare bytes. */
  private usedBytes = 0
  /** Buffers of evicted extents, by size, for the next fetch of that size (fresh ones page-fault). */
  private readonly spare = new Map<number, Buffer[]>()
  private spareBytes = 0
  /** Written ranges not yet on the source (a WritableBlockCache's). */
  protected readonly dirty = new Set<Extent>()
  private running = 0
  private readonly demandQueue: (() => void)[] = []
  private readonly prefetchQueue: Extent[] = []
  /** Readahead not read yet, by stream, so that a stream's can be dropped without a scan. */
  private readonly ahead = new Map<number, Set<Extent>>()
  private readonly spaceWaiters: (() => void)[] = []
  private readonly pattern: AccessPattern
  /** When a random read last had to fetch (performance.now()). */
  private randomDemandAt = Number.NEGATIVE_INFINITY
  protected mirror?: CacheMirror
  protected closed = false
  protected readonly counters = {
    hits: 0,
    misses: 0,
    fetches: 0,
    prefetches: 0,
    cancelled: 0,
    bytesFetched: 0,
    bytesRead: 0,
    evictions: 0,
    peakBytes: 0,
    bytesWritten: 0,
    writeBacks: 0,
    writeFailures: 0,
  }

  /** Over a writable source, a WritableBlockCache (writes cached and written back); else a read-only one. */
  static over(inner: WritableRangeSource, o?: BlockCacheOptions): WritableBlockCache
  static over(inner: RangeSource, o?: BlockCacheOptions): BlockCache
  static over(inner: RangeSource, o: BlockCacheOptions = {}): BlockCache {
    return isWritable(inner) ? new WritableBlockCache(inner, o) : new BlockCache(inner, o)
  }

  /** A read-only cache (also over a writable source: it never writes); BlockCache.over() picks. */
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
    this.pattern = new AccessPattern({ blockSize: this.blockSize, maxWindow: readahead * this.blockSize, onDrop: (s) => this.dropReadahead(s) })
    this.concurrency = Math.max(1, o.concurrency ?? DEFAULT_CONCURRENCY)
    this.prefetchConcurrency = Math.max(1, this.concurrency - Math.min(4, Math.floor(this.concurrency / 4)))
    this.logger = o.logger ?? silentLogger
  }

  stats(): BlockCacheStats {
    let inFlight = 0
    let cached = 0
    for (const list of this.slots.values()) {
      for (const e of list) {
        if (e.data) cached++
        else inFlight++
      }
    }
    return { ...this.counters, inFlight, cachedBlocks: cached, bytes: this.usedBytes, dirtyBlocks: this.dirty.size }
  }

  // ---- the index ----

  private slotOf(offset: number): number {
    return Math.floor(offset / this.blockSize)
  }

  /** The extent holding `offset`, or the free interval around it (within its block). */
  protected locate(offset: number): { extent: Extent } | { lo: number; hi: number } {
    const slot = this.slotOf(offset)
    const list = this.slots.get(slot)
    let lo = slot * this.blockSize
    let hi = Math.min(lo + this.blockSize, this.size)
    if (!list) return { lo, hi }
    // Binary search for the last extent starting at or before offset.
    let a = 0
    let b = list.length - 1
    let at = -1
    while (a <= b) {
      const m = (a + b) >> 1
      if (list[m]!.start <= offset) {
        at = m
        a = m + 1
      } else b = m - 1
    }
    if (at >= 0) {
      const e = list[at]!
      if (offset < e.start + e.length) return { extent: e }
      lo = e.start + e.length
    }
    const next = list[at + 1]
    if (next) hi = next.start
    return { lo, hi }
  }

  private insert(e: Extent): void {
    const slot = this.slotOf(e.start)
    let list = this.slots.get(slot)
    if (!list) {
      list = []
      this.slots.set(slot, list)
    }
    let i = list.length
    while (i > 0 && list[i - 1]!.start > e.start) i--
    list.splice(i, 0, e)
    this.lru.add(e)
  }

  private remove(e: Extent): void {
    if (e.gone) return
    e.gone = true
    if (e.data) this.mirror?.retract(e.start)
    if (e.stream !== undefined) this.ahead.get(e.stream)?.delete(e)
    const slot = this.slotOf(e.start)
    const list = this.slots.get(slot)
    if (list) {
      const i = list.indexOf(e)
      if (i >= 0) list.splice(i, 1)
      if (list.length === 0) this.slots.delete(slot)
    }
    this.lru.delete(e)
  }

  protected touch(e: Extent): void {
    this.lru.delete(e)
    this.lru.add(e)
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
        const at = this.locate(p)
        if (!('extent' in at)) {
          p = at.hi
          continue
        }
        const e = at.extent
        if (e.data && !loaded) this.counters.hits++
        this.unmarkAhead(e)
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
    const at = this.locate(p)
    if ('extent' in at) {
      const e = at.extent
      if (e.queued) this.promote(e)
      if (e.data) this.counters.hits++
      this.unmarkAhead(e)
      this.touch(e)
      e.pins++
      return e
    }
    const e = this.newFetch(at, p, end, access.unit, false)
    if (!e) return undefined
    if (!access.sequential) this.randomDemandAt = performance.now()
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
    await new Promise<void>((resolve) => this.spaceWaiters.push(resolve))
    if (this.closed) throw new Error('block cache is closed')
  }

  /** Memory is short: a read-only cache has nothing to write back to free it. */
  protected relieve(): void {}

  /** `read`: the bytes were read now (a load() leaves them for the native reader, who reports its read). */
  private unpin(e: Extent, access: Access, readEnd: number, read: boolean): void {
    e.pins--
    if (read) this.afterRead(e, access, readEnd)
    if (e.pins === 0) this.wakeSpaceWaiter()
  }

  /** A sequential reader that has read to the end of a range will not come back: evict it first. */
  private afterRead(e: Extent, access: Access, readEnd: number): void {
    if (access.sequential && readEnd >= e.start + e.length) e.consumed = true
    else if (!access.sequential) this.touch(e)
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
    if (stream) {
      e.stream = stream.id
      let set = this.ahead.get(stream.id)
      if (!set) {
        set = new Set()
        this.ahead.set(stream.id, set)
      }
      set.add(e)
    }
    this.startFetch(e, prefetch)
    return e
  }

  /** Read at last: no longer readahead to protect or to drop. */
  protected unmarkAhead(e: Extent): void {
    e.prefetched = false
    if (e.stream === undefined) return
    this.ahead.get(e.stream)?.delete(e)
    e.stream = undefined
  }

  protected newExtent(start: number, length: number, prefetch: boolean, adopt?: Buffer): Extent {
    const e: Extent = { start, length, pins: 0, prefetched: prefetch, consumed: false, uploading: 0, gone: false, promise: Promise.resolve() }
    if (adopt) this.usedBytes += adopt.length
    e.buffer = adopt ?? this.takeBuffer(length)
    this.counters.peakBytes = Math.max(this.counters.peakBytes, this.usedBytes)
    this.insert(e)
    return e
  }

  /** Fetches ahead of a sequential stream, up to its window, in chunks of its unit. */
  private readAhead(access: Access): void {
    if (access.window === 0 || this.closed) return
    const s = access.stream
    const limit = Math.min(this.size, s.next + access.window)
    let p = Math.max(s.next, s.aheadTo)
    while (p < limit) {
      const at = this.locate(p)
      if ('extent' in at) {
        p = at.extent.start + at.extent.length
        continue
      }
      const e = this.newFetch(at, p, Math.min(limit, p + access.unit), access.unit, true, s)
      if (!e) break
      p = e.start + e.length
    }
    s.aheadTo = Math.max(s.aheadTo, p)
  }

  /** A stream that went away leaves readahead nobody will read: drop what has not started, abort what has. */
  private dropReadahead(s: Stream): void {
    const set = this.ahead.get(s.id)
    if (!set) return
    this.ahead.delete(s.id)
    for (const e of set) {
      e.stream = undefined
      if (!e.prefetched || e.data || e.pins > 0 || e.gone) continue
      this.counters.cancelled++
      // Out of the index at once: a reader arriving now starts a fetch of its own.
      this.remove(e)
      if (e.queued) {
        const i = this.prefetchQueue.indexOf(e)
        if (i >= 0) this.prefetchQueue.splice(i, 1)
        e.queued = undefined
        this.releaseBuffer(e)
      } else e.abort?.abort() // its buffer is released when the request settles
    }
    this.wakeSpaceWaiter()
  }

  protected startFetch(e: Extent, prefetch: boolean): void {
    let resolve!: () => void
    let reject!: (err: unknown) => void
    e.promise = new Promise<void>((res, rej) => {
      resolve = res
      reject = rej
    })
    // A prefetch nobody waits for must not become an unhandled rejection.
    e.promise.catch(() => {})
    e.abort = new AbortController()
    const run = () => {
      e.queued = undefined
      this.running++
      if (e.prefetched) this.counters.prefetches++
      else this.counters.fetches++
      const target = e.buffer!.length === e.length ? e.buffer! : e.buffer!.subarray(0, e.length)
      readInto(this.inner, e.start, target, e.abort!.signal).then(
        () => {
          this.fetched(e, target)
          resolve()
          // Unpinned (readahead, or released while in flight) or dropped: room is free now.
          if (e.gone || e.pins === 0) this.wakeSpaceWaiter()
          this.pump()
        },
        (err: unknown) => {
          this.fetchFailed(e, err, prefetch)
          reject(err)
          this.wakeSpaceWaiter()
          this.pump()
        },
      )
    }
    if (prefetch) {
      e.queued = run
      this.prefetchQueue.push(e)
    } else {
      this.demandQueue.push(run)
    }
    this.pump()
  }

  /** A fetch arrived: cached and published to the mirror, or let go when its range was dropped meanwhile. */
  private fetched(e: Extent, target: Buffer): void {
    this.running--
    e.abort = undefined
    if (e.gone) {
      if (!this.closed) this.releaseBuffer(e)
      return
    }
    this.counters.bytesFetched += e.length
    e.data = target
    this.mirror?.publish(e.start, target)
  }

  /** A fetch failed: nothing is cached, so the next reader of the range tries again. */
  private fetchFailed(e: Extent, err: unknown, prefetch: boolean): void {
    this.running--
    e.abort = undefined
    this.remove(e)
    if (!this.closed) this.releaseBuffer(e)
    if (prefetch) this.logger.debug({ err, offset: e.start, length: e.length }, 'readahead failed')
  }

  /** A demand read waits for a queued readahead: start it now, as a demand fetch. */
  private promote(e: Extent): void {
    const i = this.prefetchQueue.indexOf(e)
    if (i < 0 || !e.queued) return
    this.prefetchQueue.splice(i, 1)
    const run = e.queued
    e.queued = undefined
    this.unmarkAhead(e)
    this.demandQueue.push(run)
    this.pump()
  }

  /**
   * Demand first; readahead takes what is left, but only a few requests while a random reader
   * is active: storage (and this thread) answer a 4 KiB read late behind many 8 MiB transfers,
   * and the bench's mixed row showed the random reader keeping 0.09 of its rate without this.
   */
  private pump(): void {
    while (this.demandQueue.length > 0 && this.running < this.concurrency) this.demandQueue.shift()!()
    const limit = performance.now() - this.randomDemandAt < RANDOM_ACTIVE_MS ? Math.min(this.prefetchConcurrency, SHARED_PREFETCH) : this.prefetchConcurrency
    while (this.prefetchQueue.length > 0 && this.running < limit && this.demandQueue.length === 0) {
      const e = this.prefetchQueue.shift()!
      e.queued!()
    }
  }

  // ---- memory ----

  private takeBuffer(length: number): Buffer {
    const pool = this.spare.get(length)
    const b = pool?.pop()
    if (b) {
      this.spareBytes -= length
      return b
    }
    this.usedBytes += length
    return Buffer.allocUnsafe(length)
  }

  /** Gives an extent's buffer back: kept for reuse when it is a fetch-sized one, else freed. */
  private releaseBuffer(e: Extent, reuse = false): void {
    const b = e.buffer
    e.buffer = undefined
    e.data = undefined
    if (!b) return
    if (reuse && b.length >= 256 * 1024) {
      const pool = this.spare.get(b.length) ?? []
      pool.push(b)
      this.spare.set(b.length, pool)
      this.spareBytes += b.length
    } else this.usedBytes -= b.length
  }

  private evictable(e: Extent, forPrefetch: boolean): boolean {
    return e.pins === 0 && e.data !== undefined && !e.dirty && e.uploading === 0 && !(forPrefetch && e.prefetched)
  }

  /**
   * Evicts what sequential readers have finished with, then least-recently-used ranges nobody
   * is reading, until `bytes` fit. Evicted buffers of fetch sizes are kept (still counted) for
   * the fetches that follow: writing into fresh multi-MiB allocations page-faulted on every
   * block and cost more CPU than decryption in the bench. Readers only ever get copies.
   */
  protected makeRoom(bytes: number, forPrefetch: boolean): boolean {
    const fits = () => (this.spare.get(bytes)?.length ?? 0) > 0 || this.usedBytes - this.spareBytes + bytes <= this.memoryBytes
    if (fits()) return this.trimSpare(bytes)
    for (const pass of [true, false]) {
      for (const e of this.lru) {
        if (fits()) break
        if ((pass && !e.consumed) || !this.evictable(e, forPrefetch)) continue
        this.remove(e)
        this.counters.evictions++
        this.releaseBuffer(e, true)
      }
    }
    return fits() && this.trimSpare(bytes)
  }

  /** Frees spare buffers (other sizes first) until a new `bytes` allocation fits the budget. */
  private trimSpare(bytes: number): boolean {
    if ((this.spare.get(bytes)?.length ?? 0) > 0) return true
    for (const [size, pool] of this.spare) {
      while (pool.length > 0 && this.usedBytes + bytes > this.memoryBytes) {
        pool.pop()
        this.usedBytes -= size
        this.spareBytes -= size
      }
      if (pool.length === 0) this.spare.delete(size)
    }
    return this.usedBytes + bytes <= this.memoryBytes
  }

  protected wakeSpaceWaiter(): void {
    const w = this.spaceWaiters.shift()
    if (w) w()
  }

  // ---- the native mirror ----

  nativeView(): NativeView {
    return { cache: this, offset: 0 }
  }

  /** Publishes every cached range to `mirror` and keeps it up to date until detachMirror(). */
  attachMirror(mirror: CacheMirror): void {
    this.mirror = mirror
    for (const list of this.slots.values()) for (const e of list) if (e.data) mirror.publish(e.start, e.data)
  }

  detachMirror(): void {
    this.mirror?.clear()
    this.mirror = undefined
  }

  async close(): Promise<void> {
    this.closed = true
    this.detachMirror()
    for (const list of this.slots.values())
      for (const e of list) {
        e.gone = true
        e.abort?.abort()
      }
    this.slots.clear()
    this.lru.clear()
    this.ahead.clear()
    this.usedBytes = 0
    this.spare.clear()
    this.spareBytes = 0
    this.demandQueue.length = 0
    this.prefetchQueue.length = 0
    for (const w of this.spaceWaiters.splice(0)) w()
    await this.inner.close()
  }
}

/**
 * A block cache over a writable source: writes are acknowledged into memory and written back in
 * 512-aligned pieces of at most 4 MiB (as page blobs take them) on flush, by a timer, or when
 * memory runs short. Dirty ranges are never evicted; a failed write-back keeps them dirty.
 */
export class WritableBlockCache extends BlockCache implements WritableRangeSource {
  private readonly writer: WritableRangeSource
  /** The writer takes a piece as its ranges' own memory (writeParts): no snapshot; a range written while on the way is copied instead. */
  private readonly gathers: boolean
  /** Write-backs on the way, and the piece each one sends (what a close that cannot wait for them reports lost). */
  private readonly uploads = new Map<Promise<void>, Piece>()
  /** Write-back copies, reused: 4 MiB allocations per piece kept the GC busy in the bench. */
  private readonly snapshots: Buffer[] = []
  private readonly flushTimeoutMs: number
  private readonly downFlushTimeoutMs: number
  /** When a write-back last failed (or a flush ran out of time), and why; cleared by one that lands. */
  private writesFailed?: { at: number; reason: string }
  private readonly timer: NodeJS.Timeout

  constructor(inner: WritableRangeSource, o: BlockCacheOptions = {}) {
    super(inner, o)
    this.writer = inner
    this.gathers = typeof inner.writeParts === 'function'
    this.flushTimeoutMs = o.flushTimeoutMs ?? STORAGE_RETRY.budgetMs
    this.downFlushTimeoutMs = o.downFlushTimeoutMs ?? DOWN_FLUSH_TIMEOUT_MS
    // Bounds how long written data waits in memory; unref: it must not keep the process alive.
    this.timer = setInterval(() => void this.writeBackDirty().catch(() => {}), o.writeBackIntervalMs ?? 5000)
    this.timer.unref()
  }

  /** Acknowledged into memory; durable once flush() resolves. */
  write(offset: number, data: Buffer, owned?: boolean): Promise<void> {
    return this.writeRange(offset, data, owned === true)
  }

  flush(): Promise<void> {
    return this.flushAll()
  }

  /**
   * Flushes, then closes the chain below whatever happened (a lease released, a volume key
   * zeroed). What could not be written within the flush's bound is dropped: never silently, the
   * error names every range (STORAGE_WRITE_DROPPED).
   */
  override async close(): Promise<void> {
    clearInterval(this.timer)
    let lost: StorageError | undefined
    if (!this.closed && (this.dirty.size > 0 || this.uploads.size > 0)) {
      lost = await this.flush().then(
        () => undefined,
        (err: unknown) => this.dropped(err as Error),
      )
    }
    await super.close()
    if (lost) throw lost
  }

  /** Everything not on the source yet (dirty, or on the way), by sector: what a close that cannot flush loses, exactly. */
  private dropped(cause: Error): StorageError {
    const ranges: [number, number][] = []
    for (const e of this.dirty) ranges.push([e.start + e.dirty!.lo, e.start + e.dirty!.hi])
    for (const piece of this.uploads.values()) for (const { e, lo, hi } of piece.parts) ranges.push([e.start + lo, e.start + hi])
    ranges.sort((a, b) => a[0] - b[0])
    const merged: [number, number][] = []
    for (const r of ranges) {
      const last = merged.at(-1)
      if (last && r[0] <= last[1]) last[1] = Math.max(last[1], r[1])
      else merged.push([...r])
    }
    const bytes = merged.reduce((n, [a, b]) => n + b - a, 0)
    const listed = merged.map(([a, b]) => `${a}-${b - 1}`)
    const err = new StorageError(
      'STORAGE_WRITE_DROPPED',
      `${bytes} bytes in ${merged.length} range(s) were not written to storage and are lost: ${listed.slice(0, 20).join(', ')}${listed.length > 20 ? ` and ${listed.length - 20} more` : ''} (whole 512-byte sectors of the image); the last failure: ${this.writesFailed?.reason ?? cause.message}`,
      { cause },
    )
    this.logger.error({ bytes, ranges: listed, err: cause }, `${bytes} bytes in ${merged.length} range(s) were not written to storage and are lost`)
    return err
  }

  /**
   * Full of dirty data: writing it back is what frees room. Whole pieces only while write-backs
   * are on the way (each one that ends wakes the waiter, who asks again), and the pieces around
   * holes only when nothing else can free room (see writeBackDirty).
   */
  protected override relieve(): void {
    if (this.dirty.size > 0) void this.writeBackDirty(this.uploads.size > 0 ? 'full' : 'fullFirst').catch(() => {})
  }

  private async writeRange(offset: number, data: Buffer, owned: boolean): Promise<void> {
    checkRange(this.size, offset, data.length)
    if (this.closed) throw new Error('block cache is closed')
    const end = offset + data.length
    for (let p = offset; p < end; ) {
      const at = this.locate(p)
      p = 'extent' in at ? await this.writeIntoExtent(at.extent, p, data, offset) : await this.writeUncached(at, p, data, offset, owned)
    }
    this.writeBackAsWritten()
  }

  /**
   * Copies what `data` (written at `offset`) has for cached extent `e` from `p` on into it;
   * returns where the write goes on (`p` again when the extent went away meanwhile).
   */
  private async writeIntoExtent(e: Extent, p: number, data: Buffer, offset: number): Promise<number> {
    e.pins++
    try {
      if (!e.data) await e.promise
      if (e.gone) return p
      const lo = p - e.start
      const hi = Math.min(offset + data.length, e.start + e.length) - e.start
      // Native readers must not see a half-written range: take it away while it changes.
      this.mirror?.retract(e.start)
      if (this.gathers && e.uploading > 0) this.copyOnWrite(e)
      data.copy(e.data!, lo, p - offset, p - offset + hi - lo)
      this.mirror?.publish(e.start, e.data!)
      this.markDirty(e, lo, hi)
      this.unmarkAhead(e)
      this.touch(e)
      return e.start + hi
    } finally {
      e.pins--
      if (e.pins === 0) this.wakeSpaceWaiter()
    }
  }

  /**
   * Nothing is cached at `p` (free up to `free.hi`): whole sectors become a dirty range without
   * a fetch; a partial sector is fetched first, and the next turn writes into it. Returns where
   * the write goes on (`p` again after waiting for room or fetching).
   */
  private async writeUncached(free: { hi: number }, p: number, data: Buffer, offset: number, owned: boolean): Promise<number> {
    const stop = Math.min(offset + data.length, free.hi)
    const start = alignDown(p, SECTOR)
    const last = Math.min(alignUp(stop, SECTOR), this.size)
    if (!this.makeRoom(last - start, false)) {
      await this.waitForRoom()
      return p
    }
    if (start === p && last === stop) {
      // A buffer handed over is kept as it is: no allocation, no copy (and less for the GC).
      const e = this.newExtent(start, last - start, false, owned ? data.subarray(p - offset, stop - offset) : undefined)
      e.data = e.buffer!.length === e.length ? e.buffer! : e.buffer!.subarray(0, e.length)
      if (!owned) data.copy(e.data, 0, p - offset, stop - offset)
      this.mirror?.publish(e.start, e.data)
      this.markDirty(e, 0, stop - start)
      return stop
    }
    const e = this.newExtent(start, last - start, false)
    e.pins++
    this.startFetch(e, false)
    this.counters.misses++
    try {
      await e.promise
    } finally {
      e.pins--
    }
    return p
  }

  /**
   * Streams whole 4 MiB pieces out as a sequential writer fills them, so that an fsync after a
   * large write finds little left to do (blobfuse2 stages blocks the same way); past half the
   * memory budget, whatever write-backs are already on the way. Pieces around holes wait for the
   * holes to fill, for a flush, the timer, or memory running out (relieve).
   */
  private writeBackAsWritten(): void {
    const dirty = this.dirtyBytes()
    if (dirty > this.memoryBytes / 2 || (dirty >= 2 * MAX_WRITE && this.uploads.size < this.concurrency)) void this.writeBackDirty('full').catch(() => {})
  }

  private markDirty(e: Extent, lo: number, hi: number): void {
    e.dirty = e.dirty ? { lo: Math.min(e.dirty.lo, lo), hi: Math.max(e.dirty.hi, hi) } : { lo, hi }
    this.dirty.add(e)
  }

  private dirtyBytes(): number {
    let n = 0
    for (const e of this.dirty) n += e.length
    return n
  }

  /**
   * Cuts the dirty ranges into write-backs: adjacent ranges are joined (ext4 writes a file in
   * many requests) and every piece is 512-aligned, as page blobs take it, and within one 4 MiB
   * cell of the blob (a whole cell is a full piece).
   */
  private writeBackPieces(): { at: number; parts: { e: Extent; lo: number; hi: number }[]; length: number }[] {
    const list = [...this.dirty].sort((a, b) => a.start - b.start)
    const pieces: { at: number; parts: { e: Extent; lo: number; hi: number }[]; length: number }[] = []
    let cur: (typeof pieces)[number] | undefined
    for (const e of list) {
      const d = e.dirty!
      let lo = alignDown(d.lo, SECTOR)
      const hi = Math.min(alignUp(d.hi, SECTOR), e.length)
      // Joined with the previous piece when it ends where this range's dirty part starts.
      if (cur && cur.at + cur.length === e.start + lo && lo === 0) {
        // continue the piece
      } else {
        cur = undefined
      }
      while (lo < hi) {
        // Pieces are cut on a fixed 4 MiB grid of the blob: a hole only holds back its own piece,
        // where pieces cut from the start of each dirty run left a fragment at every hole.
        const room = MAX_WRITE - ((e.start + lo) % MAX_WRITE)
        if (!cur || room === MAX_WRITE) {
          cur = { at: e.start + lo, parts: [], length: 0 }
          pieces.push(cur)
        }
        const take = Math.min(hi - lo, room)
        cur.parts.push({ e, lo, hi: lo + take })
        cur.length += take
        lo += take
      }
      // Only a range dirty to its end can be followed by the next one.
      if (hi !== e.length) cur = undefined
    }
    return pieces
  }

  /**
   * A range on its way to storage as its own memory (gathered write-back) is written again: the
   * write goes to a copy, and the write-back keeps sending the bytes it started with.
   */
  private copyOnWrite(e: Extent): void {
    const fresh = Buffer.allocUnsafe(e.buffer!.length)
    e.buffer!.copy(fresh)
    e.buffer = fresh
    e.data = fresh.length === e.length ? fresh : fresh.subarray(0, e.length)
  }

  /** Writes one piece back, with retries; a failure puts the dirty marks back. */
  private uploadPiece(piece: Piece): Promise<void> {
    // The ranges may be written again while this piece is on the way: a gathering writer is given
    // the ranges' memory (copied on write, see copyOnWrite), any other a snapshot. The copy took
    // 0.65 s of remotefs's main thread per GB written (a fifth of its time in the bench).
    const whole = this.gathers ? undefined : (this.snapshots.pop() ?? Buffer.allocUnsafe(MAX_WRITE))
    const snapshot = whole?.subarray(0, piece.length)
    const parts: Buffer[] = []
    let pos = 0
    const earlier: Promise<void>[] = []
    for (const { e, lo, hi } of piece.parts) {
      if (snapshot) e.data!.copy(snapshot, pos, lo, hi)
      else parts.push(e.data!.subarray(lo, hi))
      pos += hi - lo
      e.uploading++
      if (e.upload !== undefined) earlier.push(e.upload)
    }
    const send = snapshot ? () => this.writer.write(piece.at, snapshot) : () => this.writer.writeParts!(piece.at, parts)
    const run = async () => {
      // An older snapshot of the same range still on the way must land first.
      if (earlier.length > 0) await Promise.allSettled(earlier)
      // One try: the writer's own retries (withStorageRetry: one budget) are the only ones, so an
      // fsync waits one budget, not one per layer (three of them held a black-holed fsync 139 s).
      try {
        await send()
      } catch (err) {
        this.counters.writeFailures++
        this.writesFailed = { at: Date.now(), reason: (err as Error).message }
        for (const { e, lo, hi } of piece.parts) this.markDirty(e, lo, hi)
        this.logger.error({ err, offset: piece.at, length: piece.length }, 'write-back failed; the data stays dirty in memory and the next flush retries')
        throw err
      }
      this.writesFailed = undefined
      this.counters.bytesWritten += piece.length
      this.counters.writeBacks++
    }
    const upload = run().finally(() => {
      if (whole && this.snapshots.length < 4) this.snapshots.push(whole)
      for (const { e } of piece.parts) {
        e.uploading--
        if (e.upload === upload) e.upload = undefined
      }
      this.uploads.delete(upload)
      this.wakeSpaceWaiter()
    })
    for (const { e } of piece.parts) e.upload = upload
    this.uploads.set(upload, piece)
    upload.catch(() => {})
    return upload
  }

  /**
   * Writes back what is dirty, `concurrency` pieces at a time; rejects with the first failure.
   * `full`: only whole 4 MiB pieces, the rest stays dirty (a sequential writer's tail).
   * `fullFirst` (short of memory): whole pieces when there are any, else everything. A writer's
   * requests reach the cache out of order (FUSE threads), so holes are often still open when
   * memory runs short; writing the pieces around them then cost one Put Page per fragment
   * (write-backs averaged 2.2 MiB), while the whole pieces alone free the room that is needed.
   */
  private async writeBackDirty(mode: 'all' | 'full' | 'fullFirst' = 'all'): Promise<void> {
    if (this.dirty.size === 0) return
    let pieces = this.writeBackPieces()
    const fullOnly = mode === 'full' || (mode === 'fullFirst' && pieces.some((p) => p.length === MAX_WRITE))
    for (const e of this.dirty) e.dirty = undefined
    this.dirty.clear()
    if (fullOnly) {
      const rest = pieces.filter((p) => p.length < MAX_WRITE)
      for (const p of rest) for (const { e, lo, hi } of p.parts) this.markDirty(e, lo, hi)
      pieces = pieces.filter((p) => p.length === MAX_WRITE)
    }
    let failure: unknown
    let next = 0
    const worker = async () => {
      while (next < pieces.length) {
        const piece = pieces[next++]!
        await this.uploadPiece(piece).catch((err: unknown) => {
          failure ??= err
        })
      }
    }
    await Promise.all(Array.from({ length: Math.min(this.concurrency, pieces.length) }, worker))
    if (failure) throw failure
  }

  /**
   * Resolves once everything written before the call is on the source (fsync semantics), or
   * fails within flushTimeoutMs (downFlushTimeoutMs while storage is known down), so that an
   * fsync on storage that does not answer returns EIO in a bounded time instead of holding the
   * application (and the host's sync) in uninterruptible sleep. Write-backs still on the way go
   * on; what they do not deliver stays dirty for the next flush.
   */
  private async flushAll(): Promise<void> {
    const failed = this.writesFailed
    const down = failed !== undefined && Date.now() - failed.at < WRITES_DOWN_MS
    const bound = down ? this.downFlushTimeoutMs : this.flushTimeoutMs
    let timer: NodeJS.Timeout | undefined
    const deadline = new Promise<'late'>((resolve) => {
      timer = setTimeout(() => resolve('late'), bound)
    })
    const work = this.writeBackAll()
    // It may fail after the deadline answered: that failure is already logged and re-dirtied, not unhandled.
    work.catch(() => {})
    try {
      if ((await Promise.race([work, deadline])) === 'late') {
        this.writesFailed = { at: Date.now(), reason: `no answer within ${bound / 1000} s` }
        const why = down ? ` (storage failed a write-back ${Date.now() - failed.at} ms ago: ${failed.reason})` : ''
        throw new StorageError(
          'STORAGE_WRITE_FAILED',
          `storage took no answer to the write-backs within ${bound / 1000} s${why}; the data is kept in memory and the next fsync tries again`,
        )
      }
    } finally {
      clearTimeout(timer)
    }
  }

  private async writeBackAll(): Promise<void> {
    const pending = () => [...this.uploads.keys()]
    // Write-backs already on the way may fail and re-dirty their range: wait, then write what is dirty.
    await Promise.allSettled(pending())
    try {
      await this.writeBackDirty()
    } catch (err) {
      throw new StorageError('STORAGE_WRITE_FAILED', `writing back to storage failed: ${(err as Error).message}; the data is kept in memory and the next fsync tries again`, {
        cause: err,
      })
    }
    await Promise.allSettled(pending())
    if (this.dirty.size > 0) this.logger.debug({ ranges: this.dirty.size }, 'ranges written during the flush stay dirty for the next one')
  }
}
