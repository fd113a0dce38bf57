import { checkRange, type WritableRangeSource } from '../storage/range-source.js'
import type { StorageError } from '../storage/errors.js'
import { STORAGE_RETRY } from '../storage/retry.js'
import { BlockCache, type BlockCacheOptions, type BlockCacheStats } from './block-cache.js'
import { alignDown, alignUp, SECTOR, viewOf, type Extent } from './extent.js'
import { MAX_WRITE } from './write-back-pieces.js'
import { WriteBack } from './write-back.js'

const DOWN_FLUSH_TIMEOUT_MS = 5_000

/**
 * A block cache over a writable source: writes are acknowledged into memory and written back in
 * 512-aligned pieces of at most 4 MiB (as page blobs take them) on flush, by a timer, or when
 * memory runs short (WriteBack). Dirty ranges are never evicted; a failed write-back keeps them dirty.
 */
export class WritableBlockCache extends BlockCache implements WritableRangeSource {
  private readonly writeBack: WriteBack
  private readonly timer: NodeJS.Timeout

  constructor(inner: WritableRangeSource, o: BlockCacheOptions = {}) {
    super(inner, o)
    this.writeBack = new WriteBack(inner, {
      flushTimeoutMs: o.flushTimeoutMs ?? STORAGE_RETRY.budgetMs,
      downFlushTimeoutMs: o.downFlushTimeoutMs ?? DOWN_FLUSH_TIMEOUT_MS,
      concurrency: this.scheduler.concurrency,
      logger: this.logger,
      counters: this.counters,
      released: () => this.budget.wake(),
    })
    // Bounds how long written data waits in memory; unref: it must not keep the process alive.
    this.timer = setInterval(() => void this.writeBack.writeBackDirty().catch(() => {}), o.writeBackIntervalMs ?? 5000)
    this.timer.unref()
  }

  override stats(): BlockCacheStats {
    return { ...super.stats(), dirtyBlocks: this.writeBack.dirty.size }
  }

  /** Acknowledged into memory; durable once flush() resolves. */
  write(offset: number, data: Buffer, owned?: boolean): Promise<void> {
    return this.writeRange(offset, data, owned === true)
  }

  flush(): Promise<void> {
    return this.writeBack.flush()
  }

  /**
   * Flushes, then closes the chain below whatever happened (a lease released, a volume key
   * zeroed). What could not be written within the flush's bound is dropped: never silently, the
   * error names every range (STORAGE_WRITE_DROPPED).
   */
  override async close(): Promise<void> {
    clearInterval(this.timer)
    let lost: StorageError | undefined
    if (!this.closed && this.writeBack.pending > 0) {
      lost = await this.flush().then(
        () => undefined,
        (err: unknown) => this.writeBack.dropped(err as Error),
      )
    }
    await super.close()
    if (lost) throw lost
  }

  /**
   * Full of dirty data: writing it back is what frees room. Whole pieces only while write-backs
   * are on the way (each one that ends wakes the waiter, who asks again), and the pieces around
   * holes only when nothing else can free room (see WriteBack.writeBackDirty).
   */
  protected override relieve(): void {
    if (this.writeBack.dirty.size > 0) void this.writeBack.writeBackDirty(this.writeBack.uploading > 0 ? 'full' : 'fullFirst').catch(() => {})
  }

  private async writeRange(offset: number, data: Buffer, owned: boolean): Promise<void> {
    checkRange(this.size, offset, data.length)
    if (this.closed) throw new Error('block cache is closed')
    const end = offset + data.length
    for (let p = offset; p < end; ) {
      const at = this.index.locate(p)
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
      this.index.retract(e)
      if (this.writeBack.gathers && e.uploading > 0) copyOnWrite(e)
      data.copy(e.data!, lo, p - offset, p - offset + hi - lo)
      this.index.publish(e)
      this.writeBack.markDirty(e, lo, hi)
      this.readahead.claim(e)
      this.index.touch(e)
      return e.start + hi
    } finally {
      e.pins--
      if (e.pins === 0) this.budget.wake()
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
      e.data = viewOf(e, e.buffer!)
      if (!owned) data.copy(e.data, 0, p - offset, stop - offset)
      this.index.publish(e)
      this.writeBack.markDirty(e, 0, stop - start)
      return stop
    }
    const e = this.newExtent(start, last - start, false)
    e.pins++
    this.fetcher.start(e, false)
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
  /**
   * Streams whole 4 MiB pieces out as a sequential writer fills them, so that an fsync after a
   * large write finds little left to do (blobfuse2 stages blocks the same way); past half the
   * memory budget, whatever write-backs are already on the way. Pieces around holes wait for the
   * holes to fill, for a flush, the timer, or memory running out (relieve).
   */
  private writeBackAsWritten(): void {
    const dirty = this.writeBack.dirtyBytes()
    if (dirty > this.memoryBytes / 2 || (dirty >= 2 * MAX_WRITE && this.writeBack.uploading < this.scheduler.concurrency)) {
      void this.writeBack.writeBackDirty('full').catch(() => {})
    }
  }
}

/**
 * A range on its way to storage as its own memory (gathered write-back) is written again: the
 * write goes to a copy, and the write-back keeps sending the bytes it started with.
 */
function copyOnWrite(e: Extent): void {
  const fresh = Buffer.allocUnsafe(e.buffer!.length)
  e.buffer!.copy(fresh)
  e.buffer = fresh
  e.data = viewOf(e, fresh)
}
