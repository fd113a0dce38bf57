import { randomBytes, randomUUID } from 'node:crypto'
import { VerityError } from './errors.js'

// The dm-verity superblock as `veritysetup format` writes it (format notes: docs/dm-verity.md).
// 512 bytes, little-endian, at the start of the hash area; the tree starts at the next 4 KiB.

export const SUPERBLOCK_SIZE = 512
export const SIGNATURE = Buffer.from('verity\0\0', 'latin1')
/** encfs reads and writes the format veritysetup writes by default: sha256, 4 KiB blocks, hash type 1. */
export const BLOCK_SIZE = 4096
export const DIGEST_SIZE = 32
export const ALGORITHM = 'sha256'
const MAX_SALT = 256

export interface VeritySuperblock {
  version: number
  /** 1: salt before the data (veritysetup's default); 0: the original Chrome OS format. */
  hashType: number
  uuid: string
  algorithm: string
  dataBlockSize: number
  hashBlockSize: number
  dataBlocks: number
  salt: Buffer
}

function uuidToBytes(uuid: string): Buffer {
  return Buffer.from(uuid.replace(/-/g, ''), 'hex')
}

function bytesToUuid(b: Buffer): string {
  const h = b.toString('hex')
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`
}

/**
 * Parses a superblock and refuses what encfs does not verify. `where` names its location for
 * messages (the hash_url, or the image at hash_offset).
 */
export function parseSuperblock(buf: Buffer, where: string): VeritySuperblock {
  if (buf.length < SUPERBLOCK_SIZE || !buf.subarray(0, 8).equals(SIGNATURE)) {
    throw new VerityError(
      'VERITY_NO_SUPERBLOCK',
      `${where}: no dm-verity superblock (the "verity" signature is missing); check verity.hash_url / verity.hash_offset, and that the tree was made by veritysetup format or encfs pack --verity (without --no-superblock)`,
    )
  }
  const version = buf.readUInt32LE(8)
  const hashType = buf.readUInt32LE(12)
  const algorithm = buf.subarray(32, 64).toString('latin1').replace(/\0+$/, '')
  const dataBlockSize = buf.readUInt32LE(64)
  const hashBlockSize = buf.readUInt32LE(68)
  const dataBlocks = buf.readBigUInt64LE(72)
  const saltSize = buf.readUInt16LE(80)
  const refuse = (what: string) =>
    new VerityError(
      'VERITY_UNSUPPORTED',
      `${where}: ${what}; encfs verifies the format veritysetup format writes by default (--hash sha256, 4096-byte data and hash blocks, --format 1)`,
    )
  if (version !== 1) throw refuse(`superblock version ${version} (expected 1)`)
  if (hashType !== 1) throw refuse(`hash type ${hashType} (the Chrome OS format 0 hashes the salt after the data)`)
  if (algorithm !== ALGORITHM) throw refuse(`hash algorithm "${algorithm}"`)
  if (dataBlockSize !== BLOCK_SIZE || hashBlockSize !== BLOCK_SIZE) throw refuse(`${dataBlockSize}-byte data blocks and ${hashBlockSize}-byte hash blocks`)
  if (saltSize > MAX_SALT) throw new VerityError('VERITY_BAD_SUPERBLOCK', `${where}: salt size ${saltSize} is larger than the ${MAX_SALT} bytes a superblock holds`)
  if (dataBlocks === 0n || dataBlocks > BigInt(Number.MAX_SAFE_INTEGER) / BigInt(BLOCK_SIZE)) {
    throw new VerityError('VERITY_BAD_SUPERBLOCK', `${where}: ${dataBlocks} data blocks is not a usable image size`)
  }
  return {
    version,
    hashType,
    algorithm,
    dataBlockSize,
    hashBlockSize,
    uuid: bytesToUuid(buf.subarray(16, 32)),
    dataBlocks: Number(dataBlocks),
    salt: Buffer.from(buf.subarray(88, 88 + saltSize)),
  }
}

/** A superblock as veritysetup format would write it (random salt and uuid unless given). */
export function newSuperblock(dataBlocks: number, o: { salt?: Buffer; uuid?: string } = {}): VeritySuperblock {
  const salt = o.salt ?? randomBytes(32)
  if (salt.length > MAX_SALT) throw new VerityError('VERITY_BAD_SALT', `a salt is at most ${MAX_SALT} bytes, got ${salt.length}`)
  return { version: 1, hashType: 1, uuid: o.uuid ?? randomUUID(), algorithm: ALGORITHM, dataBlockSize: BLOCK_SIZE, hashBlockSize: BLOCK_SIZE, dataBlocks, salt }
}

/** The superblock's 512 bytes followed by zeros up to `size` (the tree starts on the next hash block). */
export function encodeSuperblock(sb: VeritySuperblock, size = BLOCK_SIZE): Buffer {
  const buf = Buffer.alloc(size)
  SIGNATURE.copy(buf, 0)
  buf.writeUInt32LE(sb.version, 8)
  buf.writeUInt32LE(sb.hashType, 12)
  uuidToBytes(sb.uuid).copy(buf, 16)
  buf.write(sb.algorithm, 32, 32, 'latin1')
  buf.writeUInt32LE(sb.dataBlockSize, 64)
  buf.writeUInt32LE(sb.hashBlockSize, 68)
  buf.writeBigUInt64LE(BigInt(sb.dataBlocks), 72)
  buf.writeUInt16LE(sb.salt.length, 80)
  sb.salt.copy(buf, 88)
  return buf
}
