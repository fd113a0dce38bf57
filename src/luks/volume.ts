import { checkRange, isWritable, readInto, type RangeSource, type WritableRangeSource } from '../storage/range-source.js'
import type { NativeView } from '../storage/native-view.js'
import { silentLogger, type Logger } from '../log/logger.js'
import { readLuksHeader, payloadRange, type LuksHeader } from './header.js'
import { unlockAnyVolumeKey } from './volume-key.js'
import { SectorCipher } from './sector-cipher.js'
import type { KdfOptions } from './kdf.js'

/** Where the encrypted payload lies in the data source. */
type Payload = { offset: number; length: number }

export interface VolumeOptions extends KdfOptions {
  /** A detached header; without it the header is read from the start of `data`. */
  header?: RangeSource
  logger?: Logger
}

/**
 * The decrypted payload of a LUKS2 (or LUKS1) image as a RangeSource: the userspace unlock path, which
 * needs no device-mapper. Reads at any offset; whole data units are fetched and decrypted
 * underneath. Over a writable source it is a WritableLuksVolume. Owns `data` (and a detached
 * header): close() closes them.
 */
export class LuksVolume implements RangeSource {
  readonly size: number
  readonly header: LuksHeader
  readonly keyslot: string
  protected readonly cipher: SectorCipher
  protected readonly offset: number
  protected readonly unit: number
  private closed = false

  protected constructor(
    private readonly data: RangeSource,
    private readonly headerSource: RangeSource | undefined,
    header: LuksHeader,
    keyslot: string,
    cipher: SectorCipher,
    payload: Payload,
  ) {
    this.header = header
    this.keyslot = keyslot
    this.cipher = cipher
    this.offset = payload.offset
    this.size = payload.length
    this.unit = header.segment.sectorSize
  }

  static open(data: WritableRangeSource, passphrase: Buffer, opts?: VolumeOptions): Promise<WritableLuksVolume>
  static open(data: RangeSource, passphrase: Buffer, opts?: VolumeOptions): Promise<LuksVolume>
  static async open(data: RangeSource, passphrase: Buffer, opts: VolumeOptions = {}): Promise<LuksVolume> {
    const logger = opts.logger ?? silentLogger
    const headerSource = opts.header ?? data
    const header = await readLuksHeader(headerSource, { logger, detached: opts.header !== undefined })
    const payload = payloadRange(header, data.size)
    const { volumeKey, keyslot } = await unlockAnyVolumeKey(headerSource, header, passphrase, { ...opts, logger })
    try {
      const cipher = new SectorCipher(header.segment.encryption, volumeKey)
      return isWritable(data) ? new WritableLuksVolume(data, opts.header, header, keyslot, cipher, payload) : new LuksVolume(data, opts.header, header, keyslot, cipher, payload)
    } finally {
      volumeKey.fill(0)
    }
  }

  async read(offset: number, length: number, signal?: AbortSignal): Promise<Buffer> {
    checkRange(this.size, offset, length)
    if (length === 0) return Buffer.alloc(0)
    const start = Math.floor(offset / this.unit) * this.unit
    const end = Math.ceil((offset + length) / this.unit) * this.unit
    const buf = Buffer.allocUnsafe(end - start)
    await this.decryptUnits(start, buf, signal)
    if (start === offset && end === offset + length) return buf
    return buf.subarray(offset - start, offset - start + length)
  }

  /** Decrypts straight into `target` (a FUSE reply buffer) when the range is whole units: one copy, no allocation. */
  async readInto(offset: number, target: Buffer, signal?: AbortSignal): Promise<void> {
    checkRange(this.size, offset, target.length)
    if (target.length === 0) return
    if (offset % this.unit === 0 && target.length % this.unit === 0) return this.decryptUnits(offset, target, signal)
    const buf = await this.read(offset, target.length, signal)
    buf.copy(target)
  }

  /** Ciphertext of whole units into `buf` (a buffer of ours, never a shared cache block), decrypted where it lies. */
  private async decryptUnits(start: number, buf: Buffer, signal?: AbortSignal): Promise<void> {
    await readInto(this.data, this.offset + start, buf, signal)
    this.cipher.decryptInPlace(buf, start / 512, this.unit)
  }

  /** The native data plane may decrypt from the cache under `data` itself (AES-XTS only). */
  nativeView(): NativeView | undefined {
    const inner = this.data.nativeView?.()
    const xts = this.cipher.xts()
    if (!inner || inner.xts || !xts) return undefined
    return {
      cache: inner.cache,
      offset: inner.offset + this.offset,
      xts: { key: xts.key, unit: this.unit, plain64: xts.plain64 },
      ...(inner.readAround ? { readAround: inner.readAround } : {}),
    }
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    this.cipher.destroy()
    await this.data.close()
    await this.headerSource?.close()
  }
}

/** A volume over a writable source: writes are encrypted here (or by the native data plane) and written below. */
export class WritableLuksVolume extends LuksVolume implements WritableRangeSource {
  private writes: Promise<void> = Promise.resolve()
  private readonly writer: WritableRangeSource

  constructor(data: WritableRangeSource, headerSource: RangeSource | undefined, header: LuksHeader, keyslot: string, cipher: SectorCipher, payload: Payload) {
    super(data, headerSource, header, keyslot, cipher, payload)
    this.writer = data
  }

  /** The native data plane may also write, encrypting itself; its writes are ordered with these. */
  override nativeView(): NativeView | undefined {
    const view = super.nativeView()
    return view && { ...view, writeEncrypted: (offset: number, ciphertext: Buffer) => this.writeCiphertext(offset, ciphertext) }
  }

  /** Writes are serialised so that two partial writes to one data unit cannot lose each other. */
  async write(offset: number, data: Buffer): Promise<void> {
    // async: a bad range is a rejected promise, as with every RangeSource, never a synchronous throw.
    checkRange(this.size, offset, data.length)
    const run = this.writes.then(async () => {
      const start = Math.floor(offset / this.unit) * this.unit
      const end = Math.ceil((offset + data.length) / this.unit) * this.unit
      let buf: Buffer
      if (start === offset && end === offset + data.length) buf = data
      else {
        buf = await this.read(start, end - start)
        data.copy(buf, offset - start)
      }
      await this.writer.write(this.offset + start, this.cipher.encrypt(buf, start / 512, this.unit), true)
    })
    this.writes = run.catch(() => {})
    return run
  }

  /** Whole units encrypted by the caller (the native data plane), in the same order as every other write. */
  private async writeCiphertext(offset: number, ciphertext: Buffer): Promise<void> {
    checkRange(this.size, offset, ciphertext.length)
    if (offset % this.unit !== 0 || ciphertext.length % this.unit !== 0)
      throw new RangeError(`encrypted write at ${offset} (+${ciphertext.length}) is not whole ${this.unit}-byte units`)
    const run = this.writes.then(() => this.writer.write(this.offset + offset, ciphertext, true))
    this.writes = run.catch(() => {})
    return run
  }

  flush(): Promise<void> {
    return this.writer.flush()
  }

  override async close(): Promise<void> {
    await this.writes
    await super.close()
  }
}
