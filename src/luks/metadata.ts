import { decodeStdBase64 } from '../encoding/base64.js'
import { hashSize, type Kdf } from './kdf-params.js'
import { parseJson } from '../encoding/json.js'

/** A problem that makes a header copy unusable (cryptsetup would treat the copy as corrupt). */
export class MetadataInvalid extends Error {}

export type { Argon2Kdf, Kdf, Pbkdf2Kdf, SupportedKdf, UnsupportedKdf } from './kdf-params.js'

export interface Keyslot {
  id: string
  type: string
  keySize: number
  priority: number
  /** Why this slot cannot be used, if it cannot (other slots may still open). */
  unusable?: string
  area: { type: string; offset: number; size: number; encryption: string; keySize: number }
  kdf: Kdf
  af: { type: string; stripes: number; hash: string }
}

export interface Segment {
  id: string
  type: string
  offset: number
  size: number | 'dynamic'
  ivTweak: string
  encryption: string
  sectorSize: number
  integrity?: unknown
  flags: string[]
}

export interface Digest {
  id: string
  type: string
  keyslots: string[]
  segments: string[]
  hash: string
  iterations: number
  salt: Buffer
  digest: Buffer
}

export interface Luks2Metadata {
  keyslots: Keyslot[]
  segments: Segment[]
  digests: Digest[]
  jsonSize: number
  keyslotsSize: number
  requirements: string[]
  flags: string[]
  raw: Record<string, unknown>
}

type Obj = Record<string, unknown>

/** cryptsetup's table limits (LUKS2_KEYSLOTS_MAX, LUKS2_TOKENS_MAX, LUKS2_SEGMENT_MAX, LUKS2_DIGEST_MAX). */
const MAX_IDS = { keyslots: 32, tokens: 32, segments: 32, digests: 8 }
const MAX_KEYSLOTS_SIZE = 128 * 1024 * 1024

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

function obj(v: unknown, what: string): Obj {
  if (!isObj(v)) throw new MetadataInvalid(`${what} is not an object`)
  return v
}

function str(o: Obj, k: string, what: string): string {
  const v = o[k]
  if (typeof v !== 'string') throw new MetadataInvalid(`${what}.${k} is ${v === undefined ? 'missing' : 'not a string'}`)
  return v
}

/** A JSON number that is an unsigned 32-bit integer (cryptsetup's validate_json_uint32). */
function u32(o: Obj, k: string, what: string): number {
  const v = o[k]
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 0xffffffff)
    throw new MetadataInvalid(`${what}.${k} is ${v === undefined ? 'missing' : 'not a 32-bit unsigned number'}`)
  return v
}

/** 64-bit quantities are decimal strings; anything above 2^53 is refused rather than rounded. */
function u64(o: Obj, k: string, what: string): number {
  const v = str(o, k, what)
  if (!/^\d+$/.test(v)) throw new MetadataInvalid(`${what}.${k} is not a decimal number string`)
  const n = Number(v)
  if (!Number.isSafeInteger(n)) throw new MetadataInvalid(`${what}.${k} is too large`)
  return n
}

function b64(o: Obj, k: string, what: string): Buffer {
  const v = str(o, k, what)
  const bytes = decodeStdBase64(v)
  if (!bytes) throw new MetadataInvalid(`${what}.${k} is not base64`)
  return bytes
}

function strings(v: unknown, what: string): string[] {
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) throw new MetadataInvalid(`${what} is not a list of strings`)
  return v as string[]
}

/** An optional list of strings: absent is empty, anything else than a list of strings is invalid. */
function optionalStrings(o: Obj, k: string, what: string): string[] {
  return o[k] === undefined ? [] : strings(o[k], `${what}.${k}`)
}

/** The members of a table (keyslots, tokens...): ids in decimal form, within cryptsetup's limits. */
function entries(top: Obj, table: keyof typeof MAX_IDS): [string, Obj][] {
  const o = obj(top[table], table)
  return Object.keys(o)
    .sort((a, b) => Number(a) - Number(b))
    .map((id) => {
      if (!/^(0|[1-9]\d*)$/.test(id) || Number(id) >= MAX_IDS[table]) throw new MetadataInvalid(`${table} has an invalid id "${id}"`)
      return [id, obj(o[id], `${table}.${id}`)]
    })
}

function parseKdf(k: Obj, what: string): Kdf {
  const type = str(k, 'type', what)
  const members = Object.keys(k).length
  if (type === 'pbkdf2') {
    if (members !== 4) throw new MetadataInvalid(`${what} must have exactly type, hash, iterations and salt`)
    return { type, hash: str(k, 'hash', what), iterations: u32(k, 'iterations', what), salt: b64(k, 'salt', what) }
  }
  if (type === 'argon2i' || type === 'argon2id') {
    if (members !== 5) throw new MetadataInvalid(`${what} must have exactly type, time, memory, cpus and salt`)
    return { type, time: u32(k, 'time', what), memory: u32(k, 'memory', what), cpus: u32(k, 'cpus', what), salt: b64(k, 'salt', what) }
  }
  return { type: 'unsupported', name: type }
}

/** Values of the right type that encfs still cannot use: the slot is skipped, others may open. */
function keyslotProblem(s: Keyslot): string | undefined {
  if (s.type !== 'luks2') return `type ${s.type}`
  if (s.af.stripes !== 4000) return `AF stripes ${s.af.stripes}`
  if (hashSize(s.af.hash) === undefined) return `AF hash ${s.af.hash}`
  const kdf = s.kdf
  switch (kdf.type) {
    case 'unsupported':
      return `kdf ${kdf.name}`
    case 'pbkdf2':
      if (hashSize(kdf.hash) === undefined) return `kdf hash ${kdf.hash}`
      if (kdf.salt.length !== 32) return 'kdf salt is not 32 bytes'
      if (kdf.iterations < 1) return 'kdf iterations 0'
      break
    case 'argon2i':
    case 'argon2id':
      if (kdf.salt.length !== 32) return 'kdf salt is not 32 bytes'
      if (kdf.time < 1 || kdf.cpus < 1 || kdf.cpus > 16 || kdf.memory < 8 * kdf.cpus) return 'argon2 parameters out of range'
  }
  if (s.area.size < Math.ceil((s.keySize * 4000) / 512) * 512) return 'area too small for its key'
  return undefined
}

function parseKeyslot(id: string, k: Obj): Keyslot {
  const what = `keyslot ${id}`
  const type = str(k, 'type', what)
  const keySize = u32(k, 'key_size', what)
  // cryptsetup tries priority 2, then 1 (the default); any other number is never tried.
  const priority = k.priority === undefined ? 1 : u32(k, 'priority', what)
  const area = obj(k.area, `${what}.area`)
  const areaWhat = `${what}.area`
  const offset = u64(area, 'offset', areaWhat)
  const size = u64(area, 'size', areaWhat)
  if (type !== 'luks2') {
    // Only the area matters for other types (it must not overlap the others).
    return {
      id,
      type,
      keySize,
      priority,
      area: { type: typeof area.type === 'string' ? area.type : '', offset, size, encryption: '', keySize: 0 },
      kdf: { type: 'unsupported', name: 'none' },
      af: { type: '', stripes: 0, hash: '' },
    }
  }
  // cryptsetup's luks2 keyslot handler knows one area type and one AF type; anything else makes the copy invalid.
  if (str(area, 'type', areaWhat) !== 'raw') throw new MetadataInvalid(`${areaWhat}.type is not "raw"`)
  const af = obj(k.af, `${what}.af`)
  if (str(af, 'type', `${what}.af`) !== 'luks1') throw new MetadataInvalid(`${what}.af.type is not "luks1"`)
  return {
    id,
    type,
    keySize,
    priority,
    area: { type: 'raw', offset, size, encryption: str(area, 'encryption', areaWhat), keySize: u32(area, 'key_size', areaWhat) },
    kdf: parseKdf(obj(k.kdf, `${what}.kdf`), `${what}.kdf`),
    af: { type: 'luks1', stripes: u32(af, 'stripes', `${what}.af`), hash: str(af, 'hash', `${what}.af`) },
  }
}

function parseSegment(id: string, s: Obj): Segment {
  const what = `segment ${id}`
  const type = str(s, 'type', what)
  const offset = u64(s, 'offset', what)
  const sizeText = str(s, 'size', what)
  const size = sizeText === 'dynamic' ? 'dynamic' : u64(s, 'size', what)
  if (size === 0) throw new MetadataInvalid(`${what}.size is 0`)
  if (offset % 512 !== 0) throw new MetadataInvalid(`${what} offset ${offset} is not 512-aligned`)
  if (size !== 'dynamic' && size % 512 !== 0) throw new MetadataInvalid(`${what} size ${size} is not 512-aligned`)
  const flags = optionalStrings(s, 'flags', what)
  if (type !== 'crypt') return { id, type, offset, size, ivTweak: '0', encryption: '', sectorSize: 512, flags }
  const ivTweak = str(s, 'iv_tweak', what)
  if (!/^\d+$/.test(ivTweak)) throw new MetadataInvalid(`${what}.iv_tweak is not a decimal number string`)
  const encryption = str(s, 'encryption', what)
  const sectorSize = u32(s, 'sector_size', what)
  if (sectorSize === 0 || sectorSize % 512 !== 0) throw new MetadataInvalid(`${what}.sector_size ${sectorSize} is not a multiple of 512`)
  if (size !== 'dynamic' && size % sectorSize !== 0) throw new MetadataInvalid(`${what}.size ${size} is not a multiple of its sector size ${sectorSize}`)
  let integrity: Obj | undefined
  if (s.integrity !== undefined) {
    integrity = obj(s.integrity, `${what}.integrity`)
    for (const k of ['type', 'journal_encryption', 'journal_integrity']) str(integrity, k, `${what}.integrity`)
  }
  return { id, type, offset, size, ivTweak, encryption, sectorSize, ...(integrity ? { integrity } : {}), flags }
}

function parseDigest(id: string, d: Obj, keyslotIds: Set<string>, segmentIds: Set<string>): Digest {
  const what = `digest ${id}`
  const type = str(d, 'type', what)
  const keyslots = strings(d.keyslots, `${what}.keyslots`)
  const segments = strings(d.segments, `${what}.segments`)
  for (const k of keyslots) if (!keyslotIds.has(k)) throw new MetadataInvalid(`${what} names keyslot ${k}, which does not exist`)
  for (const sg of segments) if (!segmentIds.has(sg)) throw new MetadataInvalid(`${what} names segment ${sg}, which does not exist`)
  if (type !== 'pbkdf2') return { id, type, keyslots, segments, hash: '', iterations: 0, salt: Buffer.alloc(0), digest: Buffer.alloc(0) }
  const digest: Digest = {
    id,
    type,
    keyslots,
    segments,
    hash: str(d, 'hash', what),
    iterations: u32(d, 'iterations', what),
    salt: b64(d, 'salt', what),
    digest: b64(d, 'digest', what),
  }
  if (digest.salt.length !== 32) throw new MetadataInvalid(`${what} salt is not 32 bytes`)
  return digest
}

/**
 * Parses the JSON metadata and validates every field's type and range as cryptsetup's
 * LUKS2_hdr_validate does (docs/luks2-validation.md), so that a copy with a wrong-typed field is
 * unusable, and the other copy is used, exactly where cryptsetup would use it. Throws
 * MetadataInvalid, never anything else, whatever the text.
 */
export function parseMetadata(text: string, hdrSize: number): Luks2Metadata {
  const raw = parseJson(text, (err) => new MetadataInvalid(`JSON does not parse: ${err.message}`))
  const top = obj(raw, 'metadata')
  for (const k of ['keyslots', 'tokens', 'segments', 'digests', 'config']) obj(top[k], k)

  const config = obj(top.config, 'config')
  const jsonSize = u64(config, 'json_size', 'config')
  const keyslotsSize = u64(config, 'keyslots_size', 'config')
  if (jsonSize !== hdrSize - 4096) throw new MetadataInvalid(`config.json_size ${jsonSize} does not match hdr_size ${hdrSize}`)
  if (keyslotsSize % 4096 !== 0 || keyslotsSize > MAX_KEYSLOTS_SIZE) throw new MetadataInvalid(`config.keyslots_size ${keyslotsSize} is not aligned or too large`)
  const flags = optionalStrings(config, 'flags', 'config')
  let requirements: string[] = []
  if (config.requirements !== undefined) requirements = optionalStrings(obj(config.requirements, 'config.requirements'), 'mandatory', 'config.requirements')

  const keyslotEntries = entries(top, 'keyslots')
  const segmentEntries = entries(top, 'segments')
  if (segmentEntries.length === 0) throw new MetadataInvalid('segments is empty')
  const keyslotIds = new Set(keyslotEntries.map(([id]) => id))
  const segmentIds = new Set(segmentEntries.map(([id]) => id))

  for (const [id, t] of entries(top, 'tokens')) {
    str(t, 'type', `token ${id}`)
    for (const k of strings(t.keyslots, `token ${id}.keyslots`)) if (!keyslotIds.has(k)) throw new MetadataInvalid(`token ${id} names keyslot ${k}, which does not exist`)
  }
  const digests = entries(top, 'digests').map(([id, d]) => parseDigest(id, d, keyslotIds, segmentIds))
  const segments = segmentEntries.map(([id, s]) => parseSegment(id, s))
  for (const seg of segments) {
    if (seg.type === 'crypt' && !digests.some((d) => d.segments.includes(seg.id))) throw new MetadataInvalid(`segment ${seg.id} is covered by no digest`)
  }
  // With the header on the data device, the keyslots area must end before the first crypt segment.
  const firstData = Math.min(...segments.filter((s) => s.type === 'crypt').map((s) => s.offset))
  if (firstData > 0 && Number.isFinite(firstData) && firstData < 2 * hdrSize + keyslotsSize) {
    throw new MetadataInvalid(`config.keyslots_size ${keyslotsSize} runs into the data segment at ${firstData}`)
  }

  const keyslots: Keyslot[] = keyslotEntries.map(([id, k]) => {
    const slot = parseKeyslot(id, k)
    const problem = keyslotProblem(slot)
    return problem ? { ...slot, unusable: problem } : slot
  })
  // Every keyslot's area (whatever its type) lies in the keyslots area; no two overlap.
  const areas = keyslots.map((s) => ({ id: s.id, start: s.area.offset, end: s.area.offset + s.area.size })).sort((a, b) => a.start - b.start)
  for (const a of areas) {
    if (a.end === a.start) throw new MetadataInvalid(`keyslot ${a.id} area is empty`)
    if (a.start < 2 * hdrSize || a.end > 2 * hdrSize + keyslotsSize || a.start % 512 !== 0)
      throw new MetadataInvalid(`keyslot ${a.id} area [${a.start}, ${a.end}) is outside the keyslots area`)
  }
  for (let i = 1; i < areas.length; i++) {
    if (areas[i]!.start < areas[i - 1]!.end) throw new MetadataInvalid(`keyslot areas ${areas[i - 1]!.id} and ${areas[i]!.id} overlap`)
  }
  return { keyslots, segments, digests, jsonSize, keyslotsSize, requirements, flags, raw: top }
}
