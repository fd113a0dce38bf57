import type { Logger } from '../log/logger.js'
import { silentLogger } from '../log/logger.js'
import { checkRange, type RangeSource } from './range-source.js'
import { StorageError } from './errors.js'

export interface BlockCacheOptions {
  blockSize?: number
  /** Upper bound for cached plus in-flight block memory. */
  memoryBytes?: number
  /** Most blocks fetched ahead of a sequential reader. */
  readaheadBlocks?: number
  /** Most concurrent requests to the inner source. */
  concurrency?: number
  /** Read-write: attempts per block write-back before a flush fails (default 3). */
  writeAttempts?: number
  /** Read-write: pause between write-back attempts (default 1000 ms, doubled each time). */
  writeRetryDelayMs?: number
  /** Read-write: dirty data older than this is written back without waiting for a flush (default 5000 ms). */
  writeBackIntervalMs?: number
  logger?: Logger
}

export interface BlockCacheStats {
  hits: number
  misses: number
  fetches: number
  prefetches: number
  bytesFetched: number
  evictions: number
  inFlight: number
  cachedBlocks: number
  /** High-water mark of cached + in-flight bytes. */
  peakBytes: number
  dirtyBlocks: number
  bytesWritten: number
  writeBacks: number
  writeFailures: number
}

// Defaults chosen with bench/read-throughput.ts (a 256 MiB file read by dd through the mount,
// Azurite on the same 2-core machine). Two runs, MB/s: 8 MiB blocks x 4 readahead 63 and 80;
// 2 MiB x 8: 50 and 67; 4 MiB x 8: 38 and 64; 1 MiB x 16: 38 and 67; the Go layout (512 KiB, no
// readahead): 21 and 40. Fewer, larger ranged GETs win because each request costs the server and
// us a fixed amount of CPU; blobfuse2 went the same way (16 MiB blocks). The price is a cold
// random 4 KiB read fetching 8 MiB, which ext4 pays for a handful of metadata blocks at mount.
// 128 MiB (16 blocks) bounds the cache per filesystem, in-flight readahead included.
export const DEFAULT_BLOCK_SIZE = 8 * 1024 * 1024
export const DEFAULT_MEMORY_BYTES = 128 * 1024 * 1024
export const DEFAULT_READAHEAD_BLOCKS = 4
export const DEFAULT_CONCURRENCY = 8

interface Entry {
  index: number
  length: number
  data?: Buffer
  promise: Promise<Buffer>
  /** Readers currently copying out of it: never evicted while > 0. */
  pins: number
  /** Fetched ahead and not read yet: only evicted by demand, never by more readahead. */
  prefetched: boolean
  /** Bytes written and not yet on the source (block-relative); never evicted while set. */
  dirty?: { lo: number; hi: number }
  /** Write-backs of this block under way; never evicted while > 0 (a failure re-dirties it). */
  uploading: number
}

/**
 * An LRU of fixed-size blocks over a RangeSource, with one fetch per block however many readers
 * miss it at once, and readahead that ramps up while reads are sequential. Memory (cached plus
 * in flight) never exceeds the budget: a demand miss that finds everything pinned waits for a
 * block to be released instead of growing.
 */
export class BlockCache implements RangeSource {
  readonly size: number
  readonly blockSize: number
  private readonly memoryBytes: number
  private readonly readahead: number
  private readonly concurrency: number
  private readonly logger: Logger
  /** Map order is the LRU order: a hit moves the entry to the end. */
  private readonly blocks = new Map<number, Entry>()
  /** Cached, in-flight and spare block bytes. */
  private usedBytes = 0
  private readonly spare: Buffer[] = []
  /** Blocks with unwritten data, and write-backs under way: kept apart so no path scans the cache. */
  private readonly dirty = new Set<Entry>()
  private readonly uploads = new Set<Promise<void>>()
  private running = 0
  private readonly queue: { run: () => void; prefetch: boolean }[] = []
  private readonly spaceWaiters: (() => void)[] = []
  private nextSequential = -1
  private streak = 0
  private closed = false
  private readonly counters = { hits: 0, misses: 0, fetches: 0, prefetches: 0, bytesFetched: 0, evictions: 0, peakBytes: 0, bytesWritten: 0, writeBacks: 0, writeFailures: 0 }
  private readonly writeAttempts: number
  private readonly writeRetryDelayMs: number
  private timer?: NodeJS.Timeout

  constructor(private readonly inner: RangeSource, o: BlockCacheOptions = {}) {
    this.size = inner.size
    this.blockSize = o.blockSize ?? DEFAULT_BLOCK_SIZE
    if (!Number.isInteger(this.blockSize) || this.blockSize < 4096 || this.blockSize % 512 !== 0) {
      throw new RangeError(`block size must be a multiple of 512 bytes, at least 4096, got ${this.blockSize}`)
    }
    // A request spans at most a few blocks; keep room for them and one more.
    this.memoryBytes = Math.max(o.memoryBytes ?? DEFAULT_MEMORY_BYTES, 4 * this.blockSize)
    this.readahead = Math.max(0, Math.min(o.readaheadBlocks ?? DEFAULT_READAHEAD_BLOCKS, Math.floor(this.memoryBytes / this.blockSize) - 2))
    this.concurrency = Math.max(1, o.concurrency ?? DEFAULT_CONCURRENCY)
    this.logger = o.logger ?? silentLogger
    this.writeAttempts = Math.max(1, o.writeAttempts ?? 3)
    this.writeRetryDelayMs = o.writeRetryDelayMs ?? 1000
    if (inner.write) {
      this.write = (offset, data) => this.writeBlocks(offset, data)
      this.flush = () => this.flushAll()
      // Bounds how long written data waits in memory; unref: it must not keep the process alive.
      this.timer = setInterval(() => void this.writeBackDirty().catch(() => {}), o.writeBackIntervalMs ?? 5000)
      this.timer.unref()
    }
  }

  /** Present only over a writable source. Acknowledged into memory; durable once flush() resolves. */
  write?: (offset: number, data: Buffer) => Promise<void>
  flush?: () => Promise<void>

  stats(): BlockCacheStats {
    let inFlight = 0
    for (const e of this.blocks.values()) if (!e.data) inFlight++
    return { ...this.counters, inFlight, cachedBlocks: this.blocks.size - inFlight, dirtyBlocks: this.dirty.size }
  }

  private async writeBlocks(offset: number, data: Buffer): Promise<void> {
    checkRange(this.size, offset, data.length)
    if (this.closed) throw new Error('block cache is closed')
    const first = Math.floor(offset / this.blockSize)
    const last = Math.floor((offset + data.length - 1) / this.blockSize)
    for (let b = first; b <= last && data.length > 0; b++) {
      const e = await this.acquire(b)
      try {
        const block = e.data ?? (await e.promise)
        const start = b * this.blockSize
        const lo = Math.max(offset, start) - start
        const hi = Math.min(offset + data.length, start + e.length) - start
        data.copy(block, lo, lo + start - offset, hi + start - offset)
        e.dirty = e.dirty ? { lo: Math.min(e.dirty.lo, lo), hi: Math.max(e.dirty.hi, hi) } : { lo, hi }
        this.dirty.add(e)
        e.prefetched = false
      } finally {
        this.release(e)
      }
    }
    // Under memory pressure, start writing back so that dirty blocks become evictable.
    if (this.dirty.size * this.blockSize > this.memoryBytes / 2) void this.writeBackDirty().catch(() => {})
  }

  /** Writes one block's dirty range back (512-byte aligned, as page blobs take it), with retries. */
  private uploadBlock(e: Entry): Promise<void> {
    const d = e.dirty!
    e.dirty = undefined
    this.dirty.delete(e)
    const lo = Math.floor(d.lo / 512) * 512
    const hi = Math.min(Math.ceil(d.hi / 512) * 512, e.length)
    // A copy: the block may be written again while this one is on the way.
    const snapshot = Buffer.from(e.data!.subarray(lo, hi))
    const at = e.index * this.blockSize + lo
    e.uploading++
    const run = async () => {
      for (let attempt = 1; ; attempt++) {
        try {
          await this.inner.write!(at, snapshot)
          this.counters.bytesWritten += snapshot.length
          this.counters.writeBacks++
          return
        } catch (err) {
          if (attempt >= this.writeAttempts) {
            this.counters.writeFailures++
            e.dirty = e.dirty ? { lo: Math.min(e.dirty.lo, d.lo), hi: Math.max(e.dirty.hi, d.hi) } : d
            this.dirty.add(e)
            this.logger.error({ err, offset: at, length: snapshot.length, attempts: attempt }, 'write-back failed; the data stays dirty in memory and the next flush retries')
            throw err
          }
          this.logger.warn({ offset: at, length: snapshot.length, attempt, reason: (err as Error).message }, 'write-back failed; retrying')
          await new Promise((r) => setTimeout(r, this.writeRetryDelayMs * 2 ** (attempt - 1)))
        }
      }
    }
    const upload = run().finally(() => {
      e.uploading--
      this.uploads.delete(upload)
      this.wakeSpaceWaiter()
    })
    this.uploads.add(upload)
    upload.catch(() => {})
    return upload
  }

  /** Writes back every dirty block, `concurrency` at a time; rejects with the first failure. */
  private async writeBackDirty(): Promise<void> {
    const dirty = [...this.dirty]
    let failure: unknown
    let next = 0
    const worker = async () => {
      while (next < dirty.length) {
        const e = dirty[next++]!
        if (!e.dirty) continue
        await this.uploadBlock(e).catch((err: unknown) => { failure ??= err })
      }
    }
    await Promise.all(Array.from({ length: Math.min(this.concurrency, dirty.length) }, worker))
    if (failure) throw failure
  }

  /** Resolves once everything written before the call is on the source (fsync semantics). */
  private async flushAll(): Promise<void> {
    const pending = () => [...this.uploads]
    // Write-backs already on the way may fail and re-dirty their block: wait, then write what is dirty.
    await Promise.allSettled(pending())
    try {
      await this.writeBackDirty()
    } catch (err) {
      throw new StorageError('STORAGE_WRITE_FAILED', `writing back to storage failed after ${this.writeAttempts} attempts: ${(err as Error).message}; the data is kept in memory and the next fsync retries`, { cause: err })
    }
    await Promise.allSettled(pending())
    if (this.dirty.size > 0) this.logger.debug({ blocks: this.dirty.size }, 'blocks written during the flush stay dirty for the next one')
  }

  async read(offset: number, length: number, signal?: AbortSignal): Promise<Buffer> {
    checkRange(this.size, offset, length)
    if (this.closed) throw new Error('block cache is closed')
    const out = Buffer.allocUnsafe(length)
    if (length === 0) return out
    const first = Math.floor(offset / this.blockSize)
    const last = Math.floor((offset + length - 1) / this.blockSize)
    this.noteAccess(first, last)
    const copy = (entry: Entry, data: Buffer) => {
      const blockStart = entry.index * this.blockSize
      const from = Math.max(offset, blockStart) - blockStart
      const to = Math.min(offset + length, blockStart + entry.length) - blockStart
      data.copy(out, blockStart + from - offset, from, to)
    }
    if ((last - first + 1) * this.blockSize <= this.memoryBytes / 2) {
      // Start every missing block at once, then copy as they arrive; but only if they all fit now:
      // waiting for space while holding pins deadlocks with other readers doing the same.
      const entries: Entry[] = []
      for (let b = first; b <= last; b++) {
        const e = this.tryAcquire(b)
        if (!e) break
        entries.push(e)
      }
      if (entries.length === last - first + 1) {
        try {
          for (const e of entries) copy(e, e.data ?? (await e.promise))
        } finally {
          for (const e of entries) this.release(e)
        }
        return out
      }
      for (const e of entries) this.release(e)
    }
    {
      // Larger than the budget allows at once (or no room right now): one block at a time.
      for (let b = first; b <= last; b++) {
        const e = await this.acquire(b, signal)
        try {
          copy(e, e.data ?? (await e.promise))
        } finally {
          this.release(e)
        }
      }
    }
    return out
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer)
    if (this.flush && !this.closed && (this.dirty.size > 0 || this.uploads.size > 0)) {
      // Nothing acknowledged may be dropped silently: flush, and refuse to close if that fails.
      await this.flush()
    }
    this.closed = true
    this.blocks.clear()
    this.usedBytes = 0
    this.spare.length = 0
    this.queue.length = 0
    for (const w of this.spaceWaiters.splice(0)) w()
    await this.inner.close()
  }

  /** Sequential detection and readahead: a read that starts in the block after the last one keeps the streak. */
  private noteAccess(first: number, last: number): void {
    if (first === this.nextSequential || first === this.nextSequential - 1) this.streak++
    else this.streak = 0
    this.nextSequential = last + 1
    if (this.readahead === 0 || this.streak === 0) return
    const window = Math.min(this.readahead, 1 << Math.min(this.streak, 10))
    const lastBlock = Math.floor((this.size - 1) / this.blockSize)
    for (let b = last + 1; b <= Math.min(last + window, lastBlock); b++) {
      if (this.blocks.has(b)) continue
      if (!this.makeRoom(this.lengthOf(b), true)) break
      this.startFetch(b, true)
    }
  }

  private lengthOf(b: number): number {
    return Math.min(this.blockSize, this.size - b * this.blockSize)
  }

  /** The block, pinned, cached or with its fetch started; undefined when there is no room now. */
  private tryAcquire(b: number): Entry | undefined {
    const hit = this.blocks.get(b)
    if (hit) {
      this.blocks.delete(b)
      this.blocks.set(b, hit)
      if (hit.data) this.counters.hits++
      hit.prefetched = false
      hit.pins++
      return hit
    }
    if (this.makeRoom(this.lengthOf(b), false)) {
      this.counters.misses++
      const entry = this.startFetch(b, false)
      entry.pins++
      return entry
    }
    return undefined
  }

  private async acquire(b: number, signal?: AbortSignal): Promise<Entry> {
    for (;;) {
      const entry = this.tryAcquire(b)
      if (entry) return entry
      signal?.throwIfAborted()
      // Full of dirty blocks: writing them back is what frees room.
      if (this.dirty.size > 0) void this.writeBackDirty().catch(() => {})
      await new Promise<void>((resolve) => this.spaceWaiters.push(resolve))
      if (this.closed) throw new Error('block cache is closed')
    }
  }

  private release(entry: Entry): void {
    entry.pins--
    if (entry.pins === 0) this.wakeSpaceWaiter()
  }

  private wakeSpaceWaiter(): void {
    const w = this.spaceWaiters.shift()
    if (w) w()
  }

  /**
   * Evicts least-recently-used blocks that nobody is reading until `bytes` fit. An evicted
   * full-size block's buffer is kept (still counted in usedBytes) for the fetch that asked for
   * room: writing into fresh multi-MiB allocations page-faulted on every block and cost more CPU
   * than decryption in bench/read-throughput.ts. Readers only ever get copies, so reuse is safe.
   */
  private makeRoom(bytes: number, forPrefetch: boolean): boolean {
    const reusable = bytes === this.blockSize
    const fits = () => (reusable && this.spare.length > 0) || this.usedBytes + bytes <= this.memoryBytes
    if (fits()) return true
    for (const [b, e] of this.blocks) {
      if (fits()) break
      if (!e.data || e.pins > 0 || e.dirty || e.uploading > 0) continue
      if (forPrefetch && e.prefetched) continue
      this.blocks.delete(b)
      this.counters.evictions++
      if (reusable && e.data.length === this.blockSize) this.spare.push(e.data)
      else this.usedBytes -= e.length
    }
    while (!fits() && this.spare.length > 0) {
      this.spare.pop()
      this.usedBytes -= this.blockSize
    }
    return fits()
  }

  private startFetch(b: number, prefetch: boolean): Entry {
    const length = this.lengthOf(b)
    let target = length === this.blockSize ? this.spare.pop() : undefined
    if (!target) this.usedBytes += length
    this.counters.peakBytes = Math.max(this.counters.peakBytes, this.usedBytes)
    const entry: Entry = { index: b, length, pins: 0, uploading: 0, prefetched: prefetch, promise: Promise.resolve(Buffer.alloc(0)) }
    entry.promise = new Promise<Buffer>((resolve, reject) => {
      const run = () => {
        this.running++
        if (prefetch) this.counters.prefetches++
        else this.counters.fetches++
        const fetch = this.inner.readInto
          ? this.inner.readInto(b * this.blockSize, (target ??= Buffer.allocUnsafe(length))).then(() => target!)
          : this.inner.read(b * this.blockSize, length)
        fetch.then(
          (data) => {
            this.counters.bytesFetched += length
            entry.data = data
            resolve(data)
            // Unpinned (readahead, or released while in flight): it is evictable now.
            if (entry.pins === 0) this.wakeSpaceWaiter()
          },
          (err: unknown) => {
            // Not cached: the next reader tries again.
            if (this.blocks.get(b) === entry) {
              this.blocks.delete(b)
              this.usedBytes -= length
            }
            if (prefetch) this.logger.debug({ err, block: b }, 'readahead failed')
            reject(err)
            this.wakeSpaceWaiter()
          },
        ).finally(() => {
          this.running--
          this.pump()
        })
      }
      // Demand reads go before readahead.
      if (prefetch) this.queue.push({ run, prefetch })
      else {
        const firstPrefetch = this.queue.findIndex((q) => q.prefetch)
        this.queue.splice(firstPrefetch < 0 ? this.queue.length : firstPrefetch, 0, { run, prefetch })
      }
      this.pump()
    })
    // A prefetch nobody waits for must not become an unhandled rejection.
    entry.promise.catch(() => {})
    this.blocks.set(b, entry)
    return entry
  }

  private pump(): void {
    while (this.running < this.concurrency && this.queue.length > 0) this.queue.shift()!.run()
  }
}
