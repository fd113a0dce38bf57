import { checkRange, type RangeSource } from './range-source.js'
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
    if (this.inner.readInto) return this.inner.readInto(this.offset + offset, target, signal)
    ;(await this.inner.read(this.offset + offset, target.length, signal)).copy(target)
  }

  nativeView(): NativeView | undefined {
    const inner = this.inner.nativeView?.()
    return inner && !inner.xts ? { ...inner, offset: inner.offset + this.offset } : undefined
  }

  async close(): Promise<void> {}
}
