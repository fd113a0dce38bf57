import { createHash } from 'node:crypto'
import { hashSize } from './kdf-params.js'
import type { RangeSource } from '../storage/range-source.js'

/** The allowed header sizes (binary header + JSON area); the secondary copy sits at hdr_size. */
export const HDR_SIZES = [16384, 32768, 65536, 131072, 262144, 524288, 1048576, 2097152, 4194304] as const

const MAGIC_PRIMARY = Buffer.from([0x4c, 0x55, 0x4b, 0x53, 0xba, 0xbe])
const MAGIC_SECONDARY = Buffer.from([0x53, 0x4b, 0x55, 0x4c, 0xba, 0xbe])
const BIN_SIZE = 4096

export interface HeaderCopy {
  copy: 'primary' | 'secondary'
  offset: number
  hdrSize: number
  seqid: bigint
  label: string
  subsystem: string
  uuid: string
  /** The JSON text (up to its first NUL). */
  json: string
}

/** Why a copy was rejected, or the version found (LUKS1 and unknown versions are reported as such). */
export type CopyResult = { ok: true; header: HeaderCopy } | { ok: false; reason: string; version?: number; magic: boolean; passedChecksum: boolean; hdrSize?: number }

function cString(buf: Buffer, start: number, length: number): string {
  const field = buf.subarray(start, start + length)
  const nul = field.indexOf(0)
  return field.subarray(0, nul < 0 ? field.length : nul).toString('latin1')
}

async function readAt(source: RangeSource, offset: number, length: number): Promise<Buffer | undefined> {
  if (offset + length > source.size) return undefined
  return source.read(offset, length)
}

/** Checks one binary header copy and its JSON area (docs/luks2.md#copy-validation, except the JSON semantics). */
export async function readCopy(source: RangeSource, offset: number, copy: 'primary' | 'secondary'): Promise<CopyResult> {
  const bin = await readAt(source, offset, BIN_SIZE)
  if (!bin) return { ok: false, reason: 'beyond the end of the image', magic: false, passedChecksum: false }
  const magic = copy === 'primary' ? MAGIC_PRIMARY : MAGIC_SECONDARY
  if (!bin.subarray(0, 6).equals(magic)) return { ok: false, reason: 'no LUKS magic', magic: false, passedChecksum: false }
  const version = bin.readUInt16BE(6)
  if (version !== 2) return { ok: false, reason: `version ${version}`, version, magic: true, passedChecksum: false }
  const hdrSize = Number(bin.readBigUInt64BE(8))
  const hdrOffset = Number(bin.readBigUInt64BE(256))
  if (hdrOffset !== offset) return { ok: false, reason: `hdr_offset ${hdrOffset} does not match its position ${offset}`, magic: true, passedChecksum: false }
  if (!(HDR_SIZES as readonly number[]).includes(hdrSize)) return { ok: false, reason: `invalid hdr_size ${hdrSize}`, magic: true, passedChecksum: false }
  if (copy === 'secondary' && offset !== hdrSize) return { ok: false, reason: `secondary at ${offset} but hdr_size ${hdrSize}`, magic: true, passedChecksum: false }
  const jsonArea = await readAt(source, offset + BIN_SIZE, hdrSize - BIN_SIZE)
  if (!jsonArea) return { ok: false, reason: 'JSON area beyond the end of the image', magic: true, passedChecksum: false }
  const alg = cString(bin, 72, 32)
  if (hashSize(alg) === undefined) return { ok: false, reason: `unknown checksum algorithm "${alg}"`, magic: true, passedChecksum: false }
  const zeroed = Buffer.from(bin)
  zeroed.fill(0, 448, 512)
  const digest = createHash(alg).update(zeroed).update(jsonArea).digest()
  if (!digest.equals(bin.subarray(448, 448 + digest.length))) return { ok: false, reason: 'checksum mismatch', magic: true, passedChecksum: false }
  const header = {
    copy,
    offset,
    hdrSize,
    seqid: bin.readBigUInt64BE(16),
    label: cString(bin, 24, 48),
    subsystem: cString(bin, 208, 48),
    uuid: cString(bin, 168, 40),
  }
  const bad = (reason: string): CopyResult => ({ ok: false, reason, magic: true, passedChecksum: true, hdrSize })
  if (jsonArea[0] !== 0x7b) return bad('JSON area does not start with "{"')
  const nul = jsonArea.indexOf(0)
  if (nul < 0) return bad('JSON area has no NUL terminator')
  for (let i = nul; i < jsonArea.length; i++) {
    if (jsonArea[i] !== 0) return bad('non-zero bytes after the JSON text')
  }
  return { ok: true, header: { ...header, json: jsonArea.subarray(0, nul).toString('utf8') } }
}
