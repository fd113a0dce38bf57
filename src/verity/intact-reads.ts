import { readInto, type RangeSource } from '../storage/range-source.js'
import type { NativeView } from '../storage/native-view.js'
import { VerityMismatchError } from './errors.js'

/**
 * Sits above the block cache. A cache block is fetched and verified whole, so one modified 4 KiB
 * block fails the fetch for all its neighbours; those neighbours are then read around the cache,
 * straight from the verifying source (which checks them again), while reads that touch the failed
 * blocks keep failing. Offsets are the same on both sides (the cache adds none).
 */
export class IntactReads implements RangeSource {
  readonly size: number

  constructor(
    private readonly cached: RangeSource,
    private readonly verified: RangeSource,
  ) {
    this.size = cached.size
  }

  async read(offset: number, length: number, signal?: AbortSignal): Promise<Buffer> {
    try {
      return await this.cached.read(offset, length, signal)
    } catch (err) {
      if (!(err instanceof VerityMismatchError) || err.touches(offset, offset + length)) throw err
      return this.verified.read(offset, length, signal)
    }
  }

  /** The same into the caller's buffer: the volume decrypts in place, without a buffer and a copy per read. */
  async readInto(offset: number, target: Buffer, signal?: AbortSignal): Promise<void> {
    try {
      await readInto(this.cached, offset, target, signal)
    } catch (err) {
      if (!(err instanceof VerityMismatchError) || err.touches(offset, offset + target.length)) throw err
      await readInto(this.verified, offset, target, signal)
    }
  }

  /**
   * The libfuse3 data plane may serve the cache natively: it holds verified blocks only (dm-verity
   * is below it). A miss whose cache block fails verification is read here instead, as above.
   */
  nativeView(): NativeView | undefined {
    const inner = this.cached.nativeView?.()
    return inner && { ...inner, readAround: (err: unknown) => err instanceof VerityMismatchError }
  }

  /** Closes the cache, which closes the verifying source under it. */
  close(): Promise<void> {
    return this.cached.close()
  }
}
