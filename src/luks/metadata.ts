import { getHashes } from 'node:crypto'

/** A problem that makes a header copy unusable (cryptsetup would treat the copy as corrupt). */
export class MetadataInvalid extends Error {}

export interface Pbkdf2Kdf { type: 'pbkdf2'; hash: string; iterations: number; salt: Buffer }
export interface Argon2Kdf { type: 'argon2i' | 'argon2id'; time: number; memory: number; cpus: number; salt: Buffer }
export type Kdf = Pbkdf2Kdf | Argon2Kdf

export interface Keyslot {
  id: string
  type: string
  keySize: number
  priority: number
  /** Why this slot cannot be used, if it cannot (other slots may still open). */
  unusable?: string
  area: { type: string; offset: number; size: number; encryption: string; keySize: number }
  kdf: Kdf | { type: string }
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

function obj(v: unknown, what: string): Obj {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new MetadataInvalid(`${what} is not an object`)
  return v as Obj
}

function str(o: Obj, k: string, what: string): string {
  const v = o[k]
  if (typeof v !== 'string') throw new MetadataInvalid(`${what}.${k} is not a string`)
  return v
}

function num(o: Obj, k: string, what: string): number {
  const v = o[k]
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new MetadataInvalid(`${what}.${k} is not a 32-bit number`)
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
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(v) || v.length % 4 !== 0) throw new MetadataInvalid(`${what}.${k} is not base64`)
  return Buffer.from(v, 'base64')
}

function ids(o: Obj, k: string, what: string): string[] {
  const v = o[k]
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'string' || !/^\d+$/.test(x))) throw new MetadataInvalid(`${what}.${k} is not a list of ids`)
  return v as string[]
}

function numericKeys(o: Obj, what: string): string[] {
  const keys = Object.keys(o)
  for (const k of keys) if (!/^\d+$/.test(k)) throw new MetadataInvalid(`${what} has a non-numeric id "${k}"`)
  return keys.sort((a, b) => Number(a) - Number(b))
}

function parseKdf(k: Obj, what: string): Kdf | { type: string } {
  const type = str(k, 'type', what)
  if (type === 'pbkdf2') return { type, hash: str(k, 'hash', what), iterations: num(k, 'iterations', what), salt: b64(k, 'salt', what) }
  if (type === 'argon2i' || type === 'argon2id') {
    return { type, time: num(k, 'time', what), memory: num(k, 'memory', what), cpus: num(k, 'cpus', what), salt: b64(k, 'salt', what) }
  }
  return { type }
}

function keyslotProblem(s: Keyslot): string | undefined {
  if (s.type !== 'luks2') return `type ${s.type}`
  if (s.area.type !== 'raw') return `area type ${s.area.type}`
  if (s.af.type !== 'luks1') return `AF type ${s.af.type}`
  if (s.af.stripes !== 4000) return `AF stripes ${s.af.stripes}`
  if (!getHashes().includes(s.af.hash)) return `AF hash ${s.af.hash}`
  const kdf = s.kdf
  if (kdf.type === 'pbkdf2') {
    const k = kdf as Pbkdf2Kdf
    if (!getHashes().includes(k.hash)) return `kdf hash ${k.hash}`
    if (k.salt.length !== 32) return 'kdf salt is not 32 bytes'
    if (k.iterations < 1) return 'kdf iterations 0'
  } else if (kdf.type === 'argon2i' || kdf.type === 'argon2id') {
    const k = kdf as Argon2Kdf
    if (k.salt.length !== 32) return 'kdf salt is not 32 bytes'
    if (k.time < 1 || k.cpus < 1 || k.cpus > 16 || k.memory < 8) return 'argon2 parameters out of range'
  } else return `kdf ${kdf.type}`
  if (s.area.size < Math.ceil((s.keySize * 4000) / 512) * 512) return 'area too small for its key'
  return undefined
}

/** Parses and structurally validates the JSON metadata (spec §2). Throws MetadataInvalid. */
export function parseMetadata(text: string, hdrSize: number): Luks2Metadata {
  let raw: unknown
  try {
    raw = JSON.parse(text)
  } catch (err) {
    throw new MetadataInvalid(`JSON does not parse: ${(err as Error).message}`)
  }
  const top = obj(raw, 'metadata')
  for (const k of ['keyslots', 'tokens', 'segments', 'digests', 'config']) obj(top[k], k)
  const config = obj(top.config, 'config')
  const jsonSize = u64(config, 'json_size', 'config')
  const keyslotsSize = u64(config, 'keyslots_size', 'config')
  if (jsonSize !== hdrSize - 4096) throw new MetadataInvalid(`config.json_size ${jsonSize} does not match hdr_size ${hdrSize}`)
  if (keyslotsSize % 4096 !== 0 || keyslotsSize > 128 * 1024 * 1024) throw new MetadataInvalid(`config.keyslots_size ${keyslotsSize} is not aligned or too large`)
  let requirements: string[] = []
  if (config.requirements !== undefined) {
    const req = config.requirements
    if (Array.isArray(req)) requirements = req.map(String)
    else requirements = (obj(req, 'config.requirements').mandatory as unknown[] | undefined ?? []).map(String)
  }
  const flags = Array.isArray(config.flags) ? config.flags.map(String) : []

  const ksObj = obj(top.keyslots, 'keyslots')
  const keyslots: Keyslot[] = numericKeys(ksObj, 'keyslots').map((id) => {
    const what = `keyslot ${id}`
    const k = obj(ksObj[id], what)
    const type = str(k, 'type', what)
    const area = obj(k.area, `${what}.area`)
    const af = obj(k.af ?? {}, `${what}.af`)
    const slot: Keyslot = {
      id, type,
      keySize: num(k, 'key_size', what),
      priority: k.priority === undefined ? 1 : num(k, 'priority', what),
      area: {
        type: str(area, 'type', `${what}.area`),
        offset: area.offset === undefined ? 0 : u64(area, 'offset', `${what}.area`),
        size: area.size === undefined ? 0 : u64(area, 'size', `${what}.area`),
        encryption: typeof area.encryption === 'string' ? area.encryption : '',
        keySize: typeof area.key_size === 'number' ? area.key_size : 0,
      },
      kdf: type === 'luks2' ? parseKdf(obj(k.kdf, `${what}.kdf`), `${what}.kdf`) : { type: 'none' },
      af: { type: typeof af.type === 'string' ? af.type : '', stripes: typeof af.stripes === 'number' ? af.stripes : 0, hash: typeof af.hash === 'string' ? af.hash : '' },
    }
    const problem = keyslotProblem(slot)
    return problem ? { ...slot, unusable: problem } : slot
  })
  // Areas of luks2 slots must lie in the keyslots area and must not overlap.
  const areas = keyslots.filter((s) => s.type === 'luks2').map((s) => ({ id: s.id, start: s.area.offset, end: s.area.offset + s.area.size })).sort((a, b) => a.start - b.start)
  for (const a of areas) {
    if (a.start < 2 * hdrSize || a.end > 2 * hdrSize + keyslotsSize || a.start % 512 !== 0) throw new MetadataInvalid(`keyslot ${a.id} area [${a.start}, ${a.end}) is outside the keyslots area`)
  }
  for (let i = 1; i < areas.length; i++) {
    if (areas[i]!.start < areas[i - 1]!.end) throw new MetadataInvalid(`keyslot areas ${areas[i - 1]!.id} and ${areas[i]!.id} overlap`)
  }

  const segObj = obj(top.segments, 'segments')
  const segments: Segment[] = numericKeys(segObj, 'segments').map((id) => {
    const what = `segment ${id}`
    const s = obj(segObj[id], what)
    const size = str(s, 'size', what)
    const seg: Segment = {
      id,
      type: str(s, 'type', what),
      offset: u64(s, 'offset', what),
      size: size === 'dynamic' ? 'dynamic' : u64(s, 'size', what),
      ivTweak: typeof s.iv_tweak === 'string' ? s.iv_tweak : '0',
      encryption: typeof s.encryption === 'string' ? s.encryption : '',
      sectorSize: typeof s.sector_size === 'number' ? s.sector_size : 512,
      ...(s.integrity !== undefined ? { integrity: s.integrity } : {}),
      flags: Array.isArray(s.flags) ? s.flags.map(String) : [],
    }
    if (seg.offset % 512 !== 0) throw new MetadataInvalid(`${what} offset ${seg.offset} is not 512-aligned`)
    return seg
  })

  const dObj = obj(top.digests, 'digests')
  const digests: Digest[] = numericKeys(dObj, 'digests').map((id) => {
    const what = `digest ${id}`
    const d = obj(dObj[id], what)
    const digest: Digest = {
      id, type: str(d, 'type', what),
      keyslots: ids(d, 'keyslots', what), segments: ids(d, 'segments', what),
      hash: str(d, 'hash', what), iterations: num(d, 'iterations', what),
      salt: b64(d, 'salt', what), digest: b64(d, 'digest', what),
    }
    for (const k of digest.keyslots) if (!ksObj[k]) throw new MetadataInvalid(`${what} names keyslot ${k}, which does not exist`)
    for (const sg of digest.segments) if (!segObj[sg]) throw new MetadataInvalid(`${what} names segment ${sg}, which does not exist`)
    if (digest.salt.length !== 32) throw new MetadataInvalid(`${what} salt is not 32 bytes`)
    return digest
  })
  return { keyslots, segments, digests, jsonSize, keyslotsSize, requirements, flags, raw: top }
}
