import { randomBytes } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { checkRange, type RangeSource } from '../../src/storage/range-source.js'

/** A RangeSource over a Buffer that counts what it is asked for and can be told to fail. */
export class MemorySource implements RangeSource {
  reads = 0
  closed = false
  failReads = false
  /** Milliseconds each read takes (0: resolves on the next tick), so readers can pile up on one fetch. */
  delayMs = 0
  /** Every read asked for, in order. */
  readonly readLog: { offset: number; length: number }[] = []
  /** Reads currently in progress, and the most there ever were at once. */
  inFlight = 0
  maxInFlight = 0
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
    this.readLog.push({ offset, length })
    this.inFlight++
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight)
    try {
      if (this.delayMs > 0) await sleep(this.delayMs)
      if (this.failReads) throw new Error('injected read failure')
      return Buffer.from(this.bytes.subarray(offset, offset + length))
    } finally {
      this.inFlight--
    }
  }

  /** How many times the range starting at `offset` was read. */
  readsAt(offset: number): number {
    return this.readLog.filter((r) => r.offset === offset).length
  }

  async close(): Promise<void> {
    this.closed = true
  }
}

/** A MemorySource that takes writes (512-byte aligned, as a page blob), can fail them, and logs them. */
export class WritableMemorySource extends MemorySource {
  failWrites = false
  /** While set, writes wait for it: storage that takes a write and does not answer. */
  hold?: Promise<void>
  readonly writeLog: { offset: number; length: number }[] = []
  flushes = 0
  private readonly landing: { count: number; resolve: () => void }[] = []

  async write(offset: number, data: Buffer): Promise<void> {
    checkRange(this.size, offset, data.length)
    if (offset % 512 !== 0 || data.length % 512 !== 0) throw new Error(`unaligned write ${offset}+${data.length}`)
    if (this.delayMs > 0) await sleep(this.delayMs)
    if (this.hold !== undefined) await this.hold
    if (this.failWrites) throw new Error('injected write failure')
    this.writeLog.push({ offset, length: data.length })
    data.copy(this.bytes, offset)
    for (const w of this.landing.filter((l) => l.count <= this.writeLog.length)) {
      this.landing.splice(this.landing.indexOf(w), 1)
      w.resolve()
    }
  }

  /** Resolves once `count` writes have landed in all (what a test awaits instead of sleeping). */
  writesLanded(count: number): Promise<void> {
    if (this.writeLog.length >= count) return Promise.resolve()
    return new Promise((resolve) => this.landing.push({ count, resolve }))
  }

  async flush(): Promise<void> {
    this.flushes++
  }
}

/**
 * A WritableMemorySource whose writes can be gathered from parts (as the libcurl Put Page does):
 * the parts are read only after `delayMs`, as a transfer thread reads them while sending, so a
 * caller that changed them meanwhile would be caught. `gathered` keeps what each write sent.
 */
export class GatheringMemorySource extends WritableMemorySource {
  readonly gathered: Buffer[] = []

  async writeParts(offset: number, parts: readonly Buffer[]): Promise<void> {
    if (this.delayMs > 0) await sleep(this.delayMs)
    const body = Buffer.concat(parts)
    this.gathered.push(body)
    const delay = this.delayMs
    this.delayMs = 0
    try {
      await this.write(offset, body)
    } finally {
      this.delayMs = delay
    }
  }
}
