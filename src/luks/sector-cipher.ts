import { createCipheriv, createDecipheriv, createHash, type Cipher } from 'node:crypto'
import { LuksError } from './errors.js'
import { optionalAddon } from '../native/addon.js'

/** The dm-crypt cipher specs encfs opens; everything else (cipher_null first of all) is refused. */
const SUPPORTED: Record<string, number[]> = {
  'aes-xts-plain64': [32, 64],
  'aes-xts-plain': [32, 64],
  'aes-cbc-essiv:sha256': [16, 24, 32],
}

export function checkCipher(spec: string, keySize: number, where: string): void {
  const sizes = SUPPORTED[spec]
  if (!sizes) {
    throw new LuksError(
      'LUKS_CIPHER_UNSUPPORTED',
      `unsupported cipher "${spec}" for the ${where}: encfs opens aes-xts-plain64, aes-xts-plain and aes-cbc-essiv:sha256 only` +
        (spec.startsWith('cipher_null') ? ' (a null cipher stores data in plaintext: this header may have been tampered with)' : ''),
    )
  }
  if (!sizes.includes(keySize)) {
    throw new LuksError('LUKS_CIPHER_UNSUPPORTED', `unsupported key size for the ${where}: ${spec} with a ${keySize}-byte key (expected ${sizes.join(' or ')} bytes)`)
  }
}

export interface SectorCipherOptions {
  /**
   * false: always one node:crypto cipher per data unit, the path taken where the native addon is
   * not built (tests compare the two; the addon's bulk AES-XTS is the default where it loads).
   */
  native?: boolean
}

/**
 * Encrypts and decrypts runs of whole data units in place. The IV counts 512-byte sectors
 * whatever the unit size (verified against cryptsetup: a 4096-byte unit k uses IV 8k), and each
 * unit is one cipher operation that restarts at its IV.
 */
export class SectorCipher {
  private readonly key: Buffer
  private readonly algorithm: string
  private readonly mode: 'xts-plain64' | 'xts-plain' | 'cbc-essiv'
  private readonly essiv?: Cipher
  private readonly iv = Buffer.alloc(16)
  private readonly useNative: boolean

  constructor(spec: string, key: Buffer, o: SectorCipherOptions = {}) {
    checkCipher(spec, key.length, 'cipher')
    this.key = Buffer.from(key)
    this.useNative = o.native ?? true
    if (spec === 'aes-cbc-essiv:sha256') {
      this.mode = 'cbc-essiv'
      this.algorithm = `aes-${key.length * 8}-cbc`
      const salt = createHash('sha256').update(key).digest()
      // ECB encrypts each 16-byte IV block independently, so one cipher object serves every unit.
      this.essiv = createCipheriv('aes-256-ecb', salt, null).setAutoPadding(false)
      salt.fill(0)
    } else {
      this.mode = spec === 'aes-xts-plain' ? 'xts-plain' : 'xts-plain64'
      this.algorithm = `aes-${(key.length / 2) * 8}-xts`
    }
  }

  private ivFor(sector: number): Buffer {
    this.iv.fill(0)
    if (this.mode === 'xts-plain') this.iv.writeUInt32LE(sector % 0x100000000, 0)
    else this.iv.writeBigUInt64LE(BigInt(sector), 0)
    if (this.mode === 'cbc-essiv') return this.essiv!.update(this.iv)
    return this.iv
  }

  /**
   * Decrypts whole units into a new buffer (the input is left alone: it may be a shared cache
   * block). `firstSector` is the 512-byte IV number of the first unit.
   */
  decrypt(input: Buffer, firstSector: number, unitSize: number): Buffer {
    return this.run(input, Buffer.allocUnsafe(input.length), firstSector, unitSize, false)
  }

  /** Decrypts whole units where they are: the read path's buffers are its own (no copy). */
  decryptInPlace(buf: Buffer, firstSector: number, unitSize: number): void {
    this.run(buf, buf, firstSector, unitSize, false)
  }

  encrypt(input: Buffer, firstSector: number, unitSize: number): Buffer {
    return this.run(input, Buffer.allocUnsafe(input.length), firstSector, unitSize, true)
  }

  /** The key and IV mode for the native data plane; undefined for CBC-ESSIV, which only JavaScript serves. */
  xts(): { key: Buffer; plain64: boolean } | undefined {
    return this.mode === 'cbc-essiv' ? undefined : { key: this.key, plain64: this.mode === 'xts-plain64' }
  }

  private run(input: Buffer, out: Buffer, firstSector: number, unitSize: number, encrypt: boolean): Buffer {
    if (input.length % unitSize !== 0) throw new RangeError(`buffer of ${input.length} bytes is not whole ${unitSize}-byte units`)
    const native = this.mode === 'cbc-essiv' || !this.useNative ? undefined : optionalAddon()
    if (native) {
      // One cipher context for the whole request (DESIGN: no allocation per 4 KiB on hot paths).
      native.xtsCrypt(encrypt, this.key, input, out, firstSector, unitSize, this.mode === 'xts-plain64')
      return out
    }
    const step = unitSize / 512
    for (let off = 0, sector = firstSector; off < input.length; off += unitSize, sector += step) {
      const iv = this.ivFor(sector)
      const c = encrypt ? createCipheriv(this.algorithm, this.key, iv) : createDecipheriv(this.algorithm, this.key, iv)
      if (this.mode === 'cbc-essiv') c.setAutoPadding(false)
      // One update per unit: XTS needs the whole unit in one call, and CBC without padding
      // returns every block, so final() has nothing left to add.
      c.update(input.subarray(off, off + unitSize)).copy(out, off)
    }
    return out
  }

  destroy(): void {
    this.key.fill(0)
  }
}
