import type { NativeView } from './native-view.js'

/**
 * The one shape every layer between blob storage and the FUSE file has: a random-access byte
 * range. BlockCache wraps one and is one; LuksVolume wraps one and is one; the FUSE server
 * serves any one. A wrapper owns what it wraps: closing the outermost closes the whole chain.
 * Read-only: a source that also takes writes is a WritableRangeSource.
 */
export interface RangeSource {
  readonly size: number
  /** Exactly `length` bytes at `offset`, in a buffer the caller owns; a range past `size` is an error. */
  read(offset: number, length: number, signal?: AbortSignal): Promise<Buffer>
  /** Fills `target` with the bytes at `offset` (sources that can, so a cache can reuse its buffers). */
  readInto?(offset: number, target: Buffer, signal?: AbortSignal): Promise<void>
  close(): Promise<void>
  /** When the bytes are a (decrypted) window onto a cache the native data plane can read (see native-view.ts). */
  nativeView?(): NativeView | undefined
}

/**
 * A source that takes writes: a writable file, a leased page blob, and the layers over them
 * (the block cache, a userspace volume). Layers decide read-only vs read-write by whether what
 * they wrap is one (isWritable), so a read-only image can never be written by mistake.
 */
export interface WritableRangeSource extends RangeSource {
  /**
   * `data` at `offset`, within `size` (writes never grow a source). `owned`: the caller hands
   * `data` over and never touches it again, so a cache may keep it instead of copying it.
   */
  write(offset: number, data: Buffer, owned?: boolean): Promise<void>
  /**
   * Optional: one write gathered from `parts` laid end to end, without joining them first (a
   * cache writes back several ranges as one piece). The caller leaves the parts unchanged until
   * the promise settles.
   */
  writeParts?(offset: number, parts: readonly Buffer[]): Promise<void>
  /** Resolves once everything written before the call is durable. */
  flush(): Promise<void>
}

export function isWritable(source: RangeSource): source is WritableRangeSource {
  const s = source as Partial<WritableRangeSource>
  return typeof s.write === 'function' && typeof s.flush === 'function'
}

export function checkRange(size: number, offset: number, length: number): void {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) {
    throw new RangeError(`invalid range: offset ${offset}, length ${length}`)
  }
  if (offset + length > size) {
    throw new RangeError(`range [${offset}, ${offset + length}) is past the end (${size} bytes)`)
  }
}

/** `source`'s bytes at `offset` into `target`: with readInto where the source has it (no copy), else read and copy. */
export async function readInto(source: RangeSource, offset: number, target: Buffer, signal?: AbortSignal): Promise<void> {
  if (source.readInto) return source.readInto(offset, target, signal)
  ;(await source.read(offset, target.length, signal)).copy(target)
}

/** read() of a source whose readInto() is the real reader: a new buffer, filled by it. */
export async function readByFilling(
  source: { readInto(offset: number, target: Buffer, signal?: AbortSignal): Promise<void> },
  offset: number,
  length: number,
  signal?: AbortSignal,
): Promise<Buffer> {
  checkRange(Number.MAX_SAFE_INTEGER, offset, length)
  const buf = Buffer.allocUnsafe(length)
  await source.readInto(offset, buf, signal)
  return buf
}

/**
 * A source that reads straight into the caller's buffer (a file, a blob, the dm-verity layer):
 * it implements fill(), and gets read() and readInto() with the range checked (a range past the
 * end is a rejected promise) and empty reads answered without asking it.
 */
export abstract class FillingSource implements RangeSource {
  abstract readonly size: number

  read(offset: number, length: number, signal?: AbortSignal): Promise<Buffer> {
    return readByFilling(this, offset, length, signal)
  }

  async readInto(offset: number, target: Buffer, signal?: AbortSignal): Promise<void> {
    checkRange(this.size, offset, target.length)
    if (target.length > 0) await this.fill(offset, target, signal)
  }

  /** Exactly target.length (> 0) bytes at `offset`, within the source, into `target`. */
  protected abstract fill(offset: number, target: Buffer, signal?: AbortSignal): Promise<void>

  abstract close(): Promise<void>
}
