import { getHashes } from 'node:crypto'
import type { RangeSource } from '../storage/range-source.js'
import { LuksError } from './errors.js'
import { refuseHostileCipher, userspaceCipherProblem, type UserspaceProblem } from './cipher-policy.js'

// The LUKS1 on-disk header (see docs/luks1.md): 592 big-endian bytes at offset 0, no checksum, no
// second copy, eight fixed keyslots. Everything in it comes from storage an attacker may write.

export const LUKS1_HEADER_SIZE = 592
const SECTOR = 512
const KEYSLOT_ENABLED = 0x00ac71f3
const KEYSLOT_DISABLED = 0x0000dead
/** cryptsetup writes and accepts only 4000 stripes. */
const LUKS1_STRIPES = 4000

export interface Luks1Keyslot {
  id: string
  iterations: number
  salt: Buffer
  /** Byte offset of the AF material in the header source. */
  offset: number
  stripes: number
  /** Bytes of AF material, rounded up to whole sectors. */
  length: number
}

export interface Luks1Header {
  version: 1
  uuid: string
  hash: string
  /** LUKS1 has no data segment object; this is its equivalent, so payloadRange serves both versions. */
  segment: { offset: number; size: 'dynamic'; sectorSize: 512; encryption: string; keySize: number }
  mkDigest: Buffer
  mkDigestSalt: Buffer
  mkDigestIterations: number
  /** Active keyslots only, in slot order (the order cryptsetup tries them). */
  keyslots: Luks1Keyslot[]
  /** Why encfs's userspace unlock cannot open this image, when it cannot (cryptsetup may). */
  userspaceProblem?: UserspaceProblem
}

function cString(buf: Buffer, start: number, length: number, what: string): string {
  const field = buf.subarray(start, start + length)
  const nul = field.indexOf(0)
  if (nul < 0) throw invalid(`${what} is not NUL-terminated`)
  const text = field.subarray(0, nul).toString('latin1')
  if (!/^[\x21-\x7e]*$/.test(text)) throw invalid(`${what} has unprintable characters`)
  return text
}

function invalid(reason: string): LuksError {
  return new LuksError('LUKS_HEADER_CORRUPT', `LUKS1 header invalid: ${reason}; the image is damaged or was tampered with`)
}

/** True when the first bytes are a LUKS1 header (magic, version 1). */
export function isLuks1(first: Buffer): boolean {
  return first.length >= 8 && first.subarray(0, 6).equals(Buffer.from([0x4c, 0x55, 0x4b, 0x53, 0xba, 0xbe])) && first.readUInt16BE(6) === 1
}

/**
 * Reads and validates a LUKS1 header with the same suspicion as a LUKS2 one: hostile values
 * (null ciphers, key sizes, stripes, keyslots over the header, each other or the data, an
 * offset past the image) are refused in every mode; what only encfs's decryption lacks is
 * recorded in `userspaceProblem` for the userspace path to refuse.
 */
export async function readLuks1Header(source: RangeSource, o: { detached?: boolean } = {}): Promise<Luks1Header> {
  if (source.size < 4096) throw new LuksError('LUKS_TOO_SMALL', `not a LUKS device: the image is only ${source.size} bytes (is it the right blob, and fully uploaded?)`)
  const h = await source.read(0, LUKS1_HEADER_SIZE)
  if (!isLuks1(h)) throw new LuksError('LUKS_NOT_LUKS', 'not a LUKS1 header')
  const cipherName = cString(h, 8, 32, 'cipher-name')
  const cipherMode = cString(h, 40, 32, 'cipher-mode')
  const hash = cString(h, 72, 32, 'hash-spec')
  const payloadSectors = h.readUInt32BE(104)
  const keyBytes = h.readUInt32BE(108)
  const mkDigestIterations = h.readUInt32BE(164)
  const uuid = cString(h, 168, 40, 'uuid')
  const encryption = `${cipherName}-${cipherMode}`
  refuseHostileCipher(encryption, 'LUKS1 data and keyslots')
  if (!hash) throw invalid('hash-spec is empty')
  if (keyBytes < 16 || keyBytes > 64 || keyBytes % 8 !== 0) throw invalid(`key-bytes ${keyBytes} (16 to 64, a multiple of 8)`)
  if (mkDigestIterations < 1) throw invalid('the volume key digest has 0 iterations')

  const headerSectors = Math.ceil(LUKS1_HEADER_SIZE / SECTOR)
  const keyslots: Luks1Keyslot[] = []
  const areas: { id: string; start: number; end: number }[] = []
  for (let i = 0; i < 8; i++) {
    const at = 208 + i * 48
    const active = h.readUInt32BE(at)
    if (active === KEYSLOT_DISABLED) continue
    if (active !== KEYSLOT_ENABLED) throw invalid(`keyslot ${i} has the unknown state 0x${active.toString(16)}`)
    const iterations = h.readUInt32BE(at + 4)
    const offsetSectors = h.readUInt32BE(at + 40)
    const stripes = h.readUInt32BE(at + 44)
    if (stripes !== LUKS1_STRIPES) throw invalid(`keyslot ${i} has ${stripes} AF stripes (LUKS1 uses ${LUKS1_STRIPES})`)
    if (iterations < 1) throw invalid(`keyslot ${i} has 0 iterations`)
    const length = Math.ceil((keyBytes * stripes) / SECTOR) * SECTOR
    const start = offsetSectors * SECTOR
    if (offsetSectors < headerSectors) throw invalid(`keyslot ${i} material at sector ${offsetSectors} overlaps the header`)
    if (start + length > source.size) throw invalid(`keyslot ${i} material [${start}, ${start + length}) is past the end of the ${o.detached ? 'header file' : 'image'}`)
    areas.push({ id: String(i), start, end: start + length })
    keyslots.push({ id: String(i), iterations, salt: Buffer.from(h.subarray(at + 8, at + 40)), offset: start, stripes, length })
  }
  areas.sort((a, b) => a.start - b.start)
  for (let i = 1; i < areas.length; i++) {
    if (areas[i]!.start < areas[i - 1]!.end) throw invalid(`keyslots ${areas[i - 1]!.id} and ${areas[i]!.id} overlap`)
  }
  const payload = payloadSectors * SECTOR
  const metadataEnd = Math.max(headerSectors * SECTOR, ...areas.map((a) => a.end))
  // With the header on the data device, the ciphertext must start after the header and every keyslot.
  if (!o.detached && payload < metadataEnd)
    throw invalid(`the payload at ${payload} overlaps the header and keyslots (which end at ${metadataEnd}); refusing a header that would expose metadata as data`)
  if (!o.detached && payload > source.size)
    throw new LuksError('LUKS_DATA_SIZE_MISMATCH', `the payload starts at ${payload}, beyond the end of the ${source.size}-byte image (truncated upload?)`)
  if (keyslots.length === 0) throw new LuksError('LUKS_NO_USABLE_KEYSLOT', 'no active keyslot in the LUKS1 header; add one with cryptsetup luksAddKey')

  const problems = [
    userspaceCipherProblem(encryption, keyBytes, 'LUKS1 data and keyslots'),
    !getHashes().includes(hash) ? `hash ${hash} is not available to encfs (Node/OpenSSL)` : undefined,
  ].filter((p): p is string => p !== undefined)
  return {
    version: 1,
    uuid,
    hash,
    segment: { offset: payload, size: 'dynamic', sectorSize: 512, encryption, keySize: keyBytes },
    mkDigest: Buffer.from(h.subarray(112, 132)),
    mkDigestSalt: Buffer.from(h.subarray(132, 164)),
    mkDigestIterations,
    keyslots,
    ...(problems.length ? { userspaceProblem: { code: 'LUKS_USERSPACE_UNSUPPORTED', message: `LUKS1 image: ${problems.join('; ')}` } } : {}),
  }
}
