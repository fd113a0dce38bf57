import type { RangeSource } from '../storage/range-source.js'
import type { Logger } from '../log/logger.js'
import { silentLogger } from '../log/logger.js'
import { HDR_SIZES, readCopy, type CopyResult, type HeaderCopy } from './binary-header.js'
import { MetadataInvalid, parseMetadata, type Digest, type Keyslot, type Luks2Metadata } from './metadata.js'
import { LuksError } from './errors.js'
import { refuseHostileCipher, userspaceCipherProblem, type UserspaceProblem } from './cipher-policy.js'
import { isLuks1, readLuks1Header, type Luks1Header } from './luks1-header.js'
import { hashSize } from './kdf-params.js'

export interface Luks2Header {
  version: 2
  hdrSize: number
  seqid: bigint
  uuid: string
  label: string
  subsystem: string
  /** Which binary header copy was used. */
  copy: 'primary' | 'secondary'
  segment: { offset: number; size: number | 'dynamic'; sectorSize: number; encryption: string; keySize: number }
  keyslots: Keyslot[]
  digests: Digest[]
  /** The one digest bound to the data segment: the only one that may confirm a key. */
  segmentDigest: Digest
  metadata: Luks2Metadata
  /** Why encfs's userspace unlock cannot open this image, when it cannot (cryptsetup may). */
  userspaceProblem?: UserspaceProblem
}

/** A LUKS1 or LUKS2 header, validated. */
export type LuksHeader = Luks2Header | Luks1Header

/**
 * Reads and validates the header of a LUKS1 or LUKS2 image (LUKS1 in luks1-header.ts). Either
 * way, hostile values are refused here, before the userspace reader or cryptsetup sees them.
 */
export async function readLuksHeader(source: RangeSource, opts: { logger?: Logger; detached?: boolean } = {}): Promise<LuksHeader> {
  if (source.size >= 4096 && isLuks1(await source.read(0, 8))) return readLuks1Header(source, opts)
  return readLuks2Header(source, opts)
}

interface ValidCopy {
  header: HeaderCopy
  metadata: Luks2Metadata
}

async function validate(source: RangeSource, offset: number, copy: 'primary' | 'secondary'): Promise<{ valid?: ValidCopy; result: CopyResult; reason?: string }> {
  const result = await readCopy(source, offset, copy)
  if (!result.ok) return { result, reason: result.reason }
  try {
    return { result, valid: { header: result.header, metadata: parseMetadata(result.header.json, result.header.hdrSize) } }
  } catch (err) {
    if (err instanceof MetadataInvalid) return { result, reason: `metadata invalid: ${err.message}` }
    throw err
  }
}

/**
 * Reads and validates a LUKS2 header. The image comes from storage an attacker may control
 * (CVE-2025-59054: a header with a null cipher made guests write plaintext), so anything outside
 * the plain single-segment aes-xts / aes-cbc-essiv layout is refused here, before the userspace
 * reader or cryptsetup sees it.
 */
export async function readLuks2Header(source: RangeSource, opts: { logger?: Logger; detached?: boolean } = {}): Promise<Luks2Header> {
  const logger = opts.logger ?? silentLogger
  if (source.size < 4096) throw new LuksError('LUKS_TOO_SMALL', `not a LUKS device: the image is only ${source.size} bytes (is it the right blob, and fully uploaded?)`)
  const primary = await validate(source, 0, 'primary')
  if (!primary.result.ok && primary.result.version === 1) {
    throw new LuksError('LUKS1_UNSUPPORTED', 'the image is LUKS1: read it with readLuksHeader, which opens both versions')
  }
  if (!primary.result.ok && primary.result.version !== undefined) {
    throw new LuksError('LUKS_VERSION_UNSUPPORTED', `unsupported LUKS version ${primary.result.version}: encfs reads LUKS2 images`)
  }
  let secondary: Awaited<ReturnType<typeof validate>> | undefined
  const primaryHdrSize = primary.result.ok ? primary.result.header.hdrSize : primary.result.passedChecksum ? primary.result.hdrSize : undefined
  if (primaryHdrSize !== undefined) secondary = await validate(source, primaryHdrSize, 'secondary')
  else {
    for (const offset of HDR_SIZES) {
      if (offset + 4096 > source.size) break
      const candidate = await validate(source, offset, 'secondary')
      if (candidate.valid) {
        secondary = candidate
        break
      }
      if (!secondary || (candidate.result.ok === false && candidate.result.magic)) secondary = candidate
    }
  }
  const p = primary.valid
  const s = secondary?.valid
  let chosen: ValidCopy
  if (p && s) chosen = s.header.seqid > p.header.seqid ? s : p
  else if (p || s) {
    chosen = (p ?? s)!
    logger.warn(
      { used: chosen.header.copy, primary: primary.reason, secondary: secondary?.reason },
      `LUKS2 header: only the ${chosen.header.copy} copy is valid; using it (the image is not repaired)`,
    )
  } else {
    const anyMagic = (!primary.result.ok && primary.result.magic) || primary.result.ok || (secondary && (secondary.result.ok || secondary.result.magic))
    if (!anyMagic) {
      throw new LuksError('LUKS_NOT_LUKS', 'not a LUKS device: no LUKS2 header found (is the blob a plain ext4 image, or the wrong blob?)')
    }
    throw new LuksError(
      'LUKS_HEADER_CORRUPT',
      `LUKS2 header corrupted (primary: ${primary.reason}; secondary: ${secondary?.reason ?? 'not found'}); restore the image from a good copy`,
    )
  }
  return applyPolicy(chosen, source.size, opts.detached ?? false)
}

const SECTOR_SIZES = [512, 1024, 2048, 4096]

function applyPolicy({ header, metadata }: ValidCopy, imageSize: number, detached: boolean): Luks2Header {
  const m = metadata
  if (m.requirements.length > 0) {
    throw new LuksError(
      'LUKS_REQUIREMENTS',
      `LUKS2 image has unmet requirement(s) ${m.requirements.join(', ')} (a reencryption in progress?); finish it with cryptsetup reencrypt --resume-only, then try again`,
    )
  }
  if (m.segments.length !== 1) {
    throw new LuksError(
      'LUKS_SEGMENT_UNSUPPORTED',
      `unsupported segment layout: ${m.segments.length} segments (reencryption in progress?); encfs opens images with exactly one data segment`,
    )
  }
  const seg = m.segments[0]!
  if (seg.type !== 'crypt') throw new LuksError('LUKS_SEGMENT_UNSUPPORTED', `unsupported segment type "${seg.type}" (only "crypt"; linear and OPAL segments are refused)`)
  if (seg.flags.length > 0) throw new LuksError('LUKS_SEGMENT_UNSUPPORTED', `unsupported segment flags ${seg.flags.join(', ')} (reencryption in progress?)`)
  if (!SECTOR_SIZES.includes(seg.sectorSize)) throw new LuksError('LUKS_SECTOR_SIZE_UNSUPPORTED', `unsupported sector size ${seg.sectorSize} (512, 1024, 2048 or 4096)`)
  if (seg.ivTweak !== '0') throw new LuksError('LUKS_SEGMENT_UNSUPPORTED', `unsupported IV tweak ${seg.ivTweak} (only 0 on finished images)`)
  if (seg.size !== 'dynamic' && (seg.size === 0 || seg.size % seg.sectorSize !== 0)) {
    throw new LuksError('LUKS_SEGMENT_UNSUPPORTED', `segment size ${seg.size} is not a multiple of the sector size ${seg.sectorSize}`)
  }
  // With the header on the data device, the ciphertext must start after both headers and the keyslots.
  const metadataEnd = 2 * header.hdrSize + m.keyslotsSize
  if (!detached && seg.offset < metadataEnd) {
    throw new LuksError(
      'LUKS_SEGMENT_UNSUPPORTED',
      `the data segment at ${seg.offset} overlaps the LUKS2 header and keyslots (which end at ${metadataEnd}); refusing a header that would expose metadata as data`,
    )
  }
  // Only the digest bound to the data segment may confirm a key (an extra digest bound to nothing,
  // with an empty value, would otherwise confirm any key).
  const covering = m.digests.filter((d) => d.segments.includes(seg.id))
  if (covering.length === 0) throw new LuksError('LUKS_METADATA_INVALID', `LUKS2 metadata invalid: no digest covers segment ${seg.id}`)
  if (covering.length > 1) throw new LuksError('LUKS_METADATA_INVALID', `LUKS2 metadata invalid: digests ${covering.map((d) => d.id).join(' and ')} both cover segment ${seg.id}`)
  const digest = covering[0]!
  if (digest.type !== 'pbkdf2') throw new LuksError('LUKS_METADATA_INVALID', `LUKS2 metadata invalid: digest ${digest.id} has the unsupported type "${digest.type}"`)
  const bound = m.keyslots.filter((k) => digest.keyslots.includes(k.id) && k.type === 'luks2')
  const keySize = bound[0]?.keySize ?? 0
  if (bound.some((k) => k.keySize !== keySize)) throw new LuksError('LUKS_METADATA_INVALID', 'LUKS2 metadata invalid: keyslots of one segment disagree on the key size')
  refuseHostileCipher(seg.encryption, 'data segment')
  for (const k of bound) refuseHostileCipher(k.area.encryption, `keyslot ${k.id} area`)
  // Sound, but beyond encfs's own decryption: only the userspace path refuses these.
  const userspaceProblem: UserspaceProblem | undefined =
    seg.integrity !== undefined
      ? { code: 'LUKS_INTEGRITY_UNSUPPORTED', message: "LUKS2 authenticated encryption (dm-integrity) is not supported by encfs's own decryption" }
      : [userspaceCipherProblem(seg.encryption, keySize, 'data segment'), ...bound.map((k) => userspaceCipherProblem(k.area.encryption, k.area.keySize, `keyslot ${k.id} area`))]
          .filter((p): p is string => p !== undefined)
          .map((message): UserspaceProblem => ({ code: 'LUKS_CIPHER_UNSUPPORTED', message }))[0]
  // 20 bytes (headers converted from LUKS1) or the hash's own size, as cryptsetup checks it.
  const size = hashSize(digest.hash)
  if (size === undefined || (digest.digest.length !== 20 && digest.digest.length !== size)) {
    throw new LuksError('LUKS_METADATA_INVALID', `LUKS2 metadata invalid: digest ${digest.id} uses ${digest.hash} with a ${digest.digest.length}-byte value`)
  }
  if (!detached && seg.offset > imageSize)
    throw new LuksError('LUKS_DATA_SIZE_MISMATCH', `the data segment starts at ${seg.offset}, beyond the end of the ${imageSize}-byte image (truncated upload?)`)
  return {
    version: 2,
    hdrSize: header.hdrSize,
    seqid: header.seqid,
    uuid: header.uuid,
    label: header.label,
    subsystem: header.subsystem,
    copy: header.copy,
    segment: { offset: seg.offset, size: seg.size, sectorSize: seg.sectorSize, encryption: seg.encryption, keySize },
    keyslots: m.keyslots,
    digests: m.digests,
    segmentDigest: digest,
    metadata: m,
    ...(userspaceProblem ? { userspaceProblem } : {}),
  }
}

/** Where the ciphertext is in a data device of `dataSize` bytes (docs/luks2.md#data-segment). */
export function payloadRange(header: Pick<LuksHeader, 'segment'>, dataSize: number): { offset: number; length: number } {
  const { offset, size, sectorSize } = header.segment
  const length = size === 'dynamic' ? dataSize - offset : size
  if (length <= 0 || offset + length > dataSize) {
    throw new LuksError(
      'LUKS_DATA_SIZE_MISMATCH',
      `data device size does not match the LUKS2 segment: the image has ${dataSize} bytes, the segment needs ${offset + Math.max(length, 1)} (truncated upload?)`,
    )
  }
  if (length % sectorSize !== 0) {
    throw new LuksError(
      'LUKS_DATA_SIZE_MISMATCH',
      `data device size does not match the LUKS2 segment: ${length} payload bytes is not a multiple of the ${sectorSize}-byte sector size (truncated upload?)`,
    )
  }
  return { offset, length }
}
