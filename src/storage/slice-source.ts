import { checkRange, readInto, type RangeSource } from './range-source.js'
import type { NativeView } from './native-view.js'

/** A read-only window onto part of another source; it does not own (or close) what it views. */
export class SliceSource implements RangeSource {
  constructor(
    private readonly inner: RangeSource,
    private readonly offset: number,
    readonly size: number,
  ) {
    checkRange(inner.size, offset, size)
  }

  async read(offset: number, length: number, signal?: AbortSignal): Promise<Buffer> {
    // async: a bad range is a rejected promise, as with every RangeSource, never a synchronous throw.
    checkRange(this.size, offset, length)
    return this.inner.read(this.offset + offset, length, signal)
  }

  async readInto(offset: number, target: Buffer, signal?: AbortSignal): Promise<void> {
    checkRange(this.size, offset, target.length)
    return readInto(this.inner, this.offset + offset, target, signal)
  }

  nativeView(): NativeView | undefined {
    const inner = this.inner.nativeView?.()
    return inner && !inner.xts ? { ...inner, offset: inner.offset + this.offset } : undefined
  }

  async close(): Promise<void> {}
}
