import { createHash, randomBytes, randomUUID } from 'node:crypto'
import { afSplit } from './af.js'
import { deriveKey, pbkdf2Async } from './kdf.js'
import { SectorCipher } from './sector-cipher.js'
import type { SupportedKdf } from './kdf-params.js'

/** The header layout cryptsetup uses by default: 16 KiB headers, data at 16 MiB. */
export const HDR_SIZE = 16384
export const DATA_OFFSET = 16 * 1024 * 1024
const KEY_SIZE = 64 // AES-256-XTS
const STRIPES = 4000

export interface FormatOptions {
  /** The key file bytes (what cryptsetup --key-file reads). */
  passphrase: Buffer
  sectorSize?: 512 | 1024 | 2048 | 4096
  pbkdf?: 'pbkdf2' | 'argon2id'
  /** pbkdf2 iterations (default 200000, a few hundred ms) or argon2id time/memory. */
  iterations?: number
  argon2?: { time: number; memoryKiB: number; cpus: number }
  label?: string
}

export interface FormattedHeader {
  /** DATA_OFFSET bytes: both binary headers, JSON areas and keyslot 0's area. */
  header: Buffer
  /** The volume key, to encrypt the payload with; zero it when done. */
  volumeKey: Buffer
  sectorSize: number
}

function binaryHeader(copy: 'primary' | 'secondary', json: Buffer, uuid: string, label: string): Buffer {
  const area = Buffer.alloc(HDR_SIZE)
  area.write(copy === 'primary' ? 'LUKS' : 'SKUL', 0, 'latin1')
  area[4] = 0xba
  area[5] = 0xbe
  area.writeUInt16BE(2, 6)
  area.writeBigUInt64BE(BigInt(HDR_SIZE), 8)
  area.writeBigUInt64BE(1n, 16)
  area.write(label.slice(0, 47), 24, 'latin1')
  area.write('sha256', 72, 'latin1')
  randomBytes(64).copy(area, 104)
  area.write(uuid, 168, 'latin1')
  area.writeBigUInt64BE(BigInt(copy === 'primary' ? 0 : HDR_SIZE), 256)
  json.copy(area, 4096)
  createHash('sha256').update(area).digest().copy(area, 448)
  return area
}

/**
 * A LUKS2 header with one keyslot for `passphrase`, laid out as cryptsetup lays it out
 * (docs/luks2.md#writing-a-header): aes-xts-plain64 with a 512-bit key, AF-split keyslot, pbkdf2 digest.
 * Our own writer, so that images can be made without device-mapper or root.
 */
export async function formatLuks2(o: FormatOptions): Promise<FormattedHeader> {
  const sectorSize = o.sectorSize ?? 4096
  let volumeKey = randomBytes(KEY_SIZE)
  // OpenSSL refuses XTS keys whose halves are equal.
  while (volumeKey.subarray(0, 32).equals(volumeKey.subarray(32))) volumeKey = randomBytes(KEY_SIZE)
  const digestSalt = randomBytes(32)
  const digestIterations = 1000
  const digest = await pbkdf2Async(volumeKey, digestSalt, digestIterations, 32, 'sha256')

  const kdfSalt = randomBytes(32)
  const kdf: SupportedKdf =
    o.pbkdf === 'argon2id'
      ? { type: 'argon2id', time: o.argon2?.time ?? 4, memory: o.argon2?.memoryKiB ?? 65536, cpus: o.argon2?.cpus ?? 2, salt: kdfSalt }
      : { type: 'pbkdf2', hash: 'sha256', iterations: o.iterations ?? 200_000, salt: kdfSalt }
  const derived = await deriveKey(kdf, o.passphrase, KEY_SIZE, '0')
  const material = afSplit(volumeKey, STRIPES, 'sha256', randomBytes)
  const keyslotCipher = new SectorCipher('aes-xts-plain64', derived)
  const encryptedMaterial = keyslotCipher.encrypt(material, 0, 512)
  keyslotCipher.destroy()
  derived.fill(0)
  material.fill(0)

  const areaOffset = 2 * HDR_SIZE
  const areaSize = Math.ceil((KEY_SIZE * STRIPES) / 4096) * 4096
  const kdfJson =
    kdf.type === 'pbkdf2'
      ? { type: 'pbkdf2', hash: 'sha256', iterations: kdf.iterations, salt: kdfSalt.toString('base64') }
      : { type: 'argon2id', time: kdf.time, memory: kdf.memory, cpus: kdf.cpus, salt: kdfSalt.toString('base64') }
  const metadata = {
    keyslots: {
      0: {
        type: 'luks2',
        key_size: KEY_SIZE,
        af: { type: 'luks1', stripes: STRIPES, hash: 'sha256' },
        area: { type: 'raw', offset: String(areaOffset), size: String(areaSize), encryption: 'aes-xts-plain64', key_size: KEY_SIZE },
        kdf: kdfJson,
      },
    },
    tokens: {},
    segments: { 0: { type: 'crypt', offset: String(DATA_OFFSET), size: 'dynamic', iv_tweak: '0', encryption: 'aes-xts-plain64', sector_size: sectorSize } },
    digests: {
      0: { type: 'pbkdf2', keyslots: ['0'], segments: ['0'], hash: 'sha256', iterations: digestIterations, salt: digestSalt.toString('base64'), digest: digest.toString('base64') },
    },
    config: { json_size: String(HDR_SIZE - 4096), keyslots_size: String(DATA_OFFSET - 2 * HDR_SIZE) },
  }
  const json = Buffer.from(JSON.stringify(metadata))
  if (json.length >= HDR_SIZE - 4096) throw new RangeError('LUKS2 metadata does not fit the JSON area')
  const uuid = randomUUID()
  const header = Buffer.alloc(DATA_OFFSET)
  binaryHeader('primary', json, uuid, o.label ?? '').copy(header, 0)
  binaryHeader('secondary', json, uuid, o.label ?? '').copy(header, HDR_SIZE)
  encryptedMaterial.copy(header, areaOffset)
  return { header, volumeKey, sectorSize }
}
