import type { Logger } from '../log/logger.js'
import { StorageError } from '../storage/errors.js'
import type { WritableRangeSource } from '../storage/range-source.js'
import type { Extent } from './extent.js'
import type { CacheCounters } from './stats.js'
import { MAX_WRITE, writeBackPieces, type Piece } from './write-back-pieces.js'

/** After a write-back failed, storage is taken for down this long: flushes wait for it only downFlushTimeoutMs. */
const WRITES_DOWN_MS = 10_000

export interface WriteBackOptions {
  /** The longest a flush waits for storage. */
  flushTimeoutMs: number
  /** The same while storage is known down. */
  downFlushTimeoutMs: number
  /** Most write-backs on the way at once. */
  concurrency: number
  logger: Logger
  counters: CacheCounters
  /** A write-back ended: its ranges may be evicted now. */
  released(): void
}

/**
 * What is written and not yet on the source, and getting it there: dirty ranges are cut into
 * pieces on the blob's 4 MiB grid (writeBackPieces), sent `concurrency` at a time with the
 * writer's own retries, in order per range (the next write-back of a range waits for the last,
 * so storage ends with the newest bytes); a failure puts the dirty marks back. flush() is an
 * fsync with a deadline; dropped() says exactly what a close that cannot flush loses.
 */
export class WriteBack {
  /** Written ranges not yet on the source. */
  readonly dirty = new Set<Extent>()
  /** Write-backs on the way, and the piece each one sends (what a close that cannot wait for them reports lost). */
  private readonly uploads = new Map<Promise<void>, Piece>()
  /** The writer takes a piece as its ranges' own memory (writeParts): no snapshot; a range written while on the way is copied instead. */
  readonly gathers: boolean
  /** Write-back copies, reused: 4 MiB allocations per piece kept the GC busy in the bench. */
  private readonly snapshots: Buffer[] = []
  /** When a write-back last failed (or a flush ran out of time), and why; cleared by one that lands. */
  private writesFailed?: { at: number; reason: string }

  constructor(
    private readonly writer: WritableRangeSource,
    private readonly o: WriteBackOptions,
  ) {
    this.gathers = typeof writer.writeParts === 'function'
  }

  get pending(): number {
    return this.dirty.size + this.uploads.size
  }

  get uploading(): number {
    return this.uploads.size
  }

  markDirty(e: Extent, lo: number, hi: number): void {
    e.dirty = e.dirty ? { lo: Math.min(e.dirty.lo, lo), hi: Math.max(e.dirty.hi, hi) } : { lo, hi }
    this.dirty.add(e)
  }

  dirtyBytes(): number {
    let n = 0
    for (const e of this.dirty) n += e.length
    return n
  }

  /** Writes one piece back, with retries; a failure puts the dirty marks back. */
  private uploadPiece(piece: Piece): Promise<void> {
    // The ranges may be written again while this piece is on the way: a gathering writer is given
    // the ranges' memory (copied on write, see WritableBlockCache), any other a snapshot.
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
        this.o.counters.writeFailures++
        this.writesFailed = { at: Date.now(), reason: (err as Error).message }
        for (const { e, lo, hi } of piece.parts) this.markDirty(e, lo, hi)
        this.o.logger.error({ err, offset: piece.at, length: piece.length }, 'write-back failed; the data stays dirty in memory and the next flush retries')
        throw err
      }
      this.writesFailed = undefined
      this.o.counters.bytesWritten += piece.length
      this.o.counters.writeBacks++
    }
    const upload = run().finally(() => {
      if (whole && this.snapshots.length < 4) this.snapshots.push(whole)
      for (const { e } of piece.parts) {
        e.uploading--
        if (e.upload === upload) e.upload = undefined
      }
      this.uploads.delete(upload)
      this.o.released()
    })
    for (const { e } of piece.parts) e.upload = upload
    this.uploads.set(upload, piece)
    upload.catch(() => {})
    return upload
  }

  /**
   * Writes back what is dirty, `concurrency` pieces at a time; rejects with the first failure.
   * `full`: only whole 4 MiB pieces, the rest stays dirty (a sequential writer's tail).
   * `fullFirst` (short of memory): whole pieces when there are any, else everything: a writer's
   * requests reach the cache out of order (FUSE threads), so holes are often still open when
   * memory runs short, and the whole pieces alone free the room that is needed.
   */
  async writeBackDirty(mode: 'all' | 'full' | 'fullFirst' = 'all'): Promise<void> {
    if (this.dirty.size === 0) return
    let pieces = writeBackPieces(this.dirty)
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
    await Promise.all(Array.from({ length: Math.min(this.o.concurrency, pieces.length) }, worker))
    if (failure) throw failure
  }

  /**
   * Resolves once everything written before the call is on the source (fsync semantics), or
   * fails within flushTimeoutMs (downFlushTimeoutMs while storage is known down), so that an
   * fsync on storage that does not answer returns EIO in a bounded time instead of holding the
   * application (and the host's sync) in uninterruptible sleep. Write-backs still on the way go
   * on; what they do not deliver stays dirty for the next flush.
   */
  async flush(): Promise<void> {
    const failed = this.writesFailed
    const down = failed !== undefined && Date.now() - failed.at < WRITES_DOWN_MS
    const bound = down ? this.o.downFlushTimeoutMs : this.o.flushTimeoutMs
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
    if (this.dirty.size > 0) this.o.logger.debug({ ranges: this.dirty.size }, 'ranges written during the flush stay dirty for the next one')
  }

  /** Everything not on the source yet (dirty, or on the way), by sector: what a close that cannot flush loses, exactly. */
  dropped(cause: Error): StorageError {
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
    this.o.logger.error({ bytes, ranges: listed, err: cause }, `${bytes} bytes in ${merged.length} range(s) were not written to storage and are lost`)
    return err
  }
}
