import { randomBytes } from 'node:crypto'
import { checkRange, type RangeSource } from '../../src/storage/range-source.js'

/** A RangeSource over a Buffer that counts what it is asked for and can be told to fail. */
export class MemorySource implements RangeSource {
  reads = 0
  closed = false
  failReads = false
  readonly bytes: Buffer

  constructor(bytes: Buffer | number) {
    this.bytes = typeof bytes === 'number' ? randomBytes(bytes) : bytes
  }

  get size(): number {
    return this.bytes.length
  }

  async read(offset: number, length: number): Promise<Buffer> {
    checkRange(this.size, offset, length)
    this.reads++
    if (this.failReads) throw new Error('injected read failure')
    return Buffer.from(this.bytes.subarray(offset, offset + length))
  }

  async close(): Promise<void> {
    this.closed = true
  }
}
