import { timingSafeEqual } from 'node:crypto'
import type { RangeSource } from '../storage/range-source.js'
import { silentLogger, type Logger } from '../log/logger.js'
import type { Luks2Header } from './header.js'
import type { Keyslot } from './metadata.js'
import { kdfName, type SupportedKdf } from './kdf-params.js'
import { KdfBudgetTracker } from './kdf-budget.js'
import { afMerge } from './af.js'
import { checkArgon2Memory, deriveKey, pbkdf2Async, type KdfOptions } from './kdf.js'
import { SectorCipher } from './sector-cipher.js'
import { LuksError } from './errors.js'

export interface UnlockOptions extends KdfOptions {
  logger?: Logger
}

export interface Unlocked {
  /** The caller owns this buffer and must zero it when done. */
  volumeKey: Buffer
  keyslot: string
}

/** A keyslot encfs can try: one whose KDF it computes. */
export type CandidateKeyslot = Keyslot & { kdf: SupportedKdf }

/** The keyslots that can yield the data segment's key, in the order cryptsetup tries them (priority 2, then 1). */
export function candidateKeyslots(header: Luks2Header, headerSize: number): { slots: CandidateKeyslot[]; skipped: string[] } {
  const skipped: string[] = []
  const slots: CandidateKeyslot[] = []
  const areaStart = 2 * header.hdrSize
  const areaEnd = Math.min(areaStart + header.metadata.keyslotsSize, headerSize)
  for (const slot of header.keyslots) {
    if (slot.type !== 'luks2') continue
    if (!header.segmentDigest.keyslots.includes(slot.id)) {
      skipped.push(`keyslot ${slot.id}: not bound to the data segment`)
      continue
    }
    const kdf = slot.kdf
    // An unsupported KDF always makes the slot unusable; the second test tells the type so.
    if (slot.unusable || kdf.type === 'unsupported') {
      skipped.push(`keyslot ${slot.id}: unsupported ${slot.unusable ?? `kdf ${kdfName(kdf)}`}`)
      continue
    }
    const length = Math.ceil((slot.keySize * slot.af.stripes) / 512) * 512
    if (slot.area.offset < areaStart || slot.area.offset + length > areaEnd || slot.area.offset % 512 !== 0) {
      skipped.push(`keyslot ${slot.id}: area out of range`)
      continue
    }
    if (slot.priority !== 1 && slot.priority !== 2) {
      skipped.push(`keyslot ${slot.id}: priority ${slot.priority === 0 ? '"ignore"' : slot.priority}`)
      continue
    }
    slots.push({ ...slot, kdf })
  }
  // Stable sort: priority 2 ("prefer") first, then the rest in id order.
  slots.sort((a, b) => b.priority - a.priority || Number(a.id) - Number(b.id))
  return { slots, skipped }
}

/**
 * A keyslot as both LUKS versions describe it: how its key is derived, and where its
 * anti-forensic material lies and how that is encrypted. LUKS1 and LUKS2 differ only in how
 * the header says these things (luks1-unlock.ts maps LUKS1 onto this).
 */
export interface OpenableKeyslot {
  id: string
  kdf: SupportedKdf
  area: { offset: number; length: number; encryption: string; keySize: number }
  keySize: number
  stripes: number
  afHash: string
}

/** What confirms a candidate volume key: PBKDF2 of it with this salt and count gives `digest`. */
export interface VolumeKeyCheck {
  salt: Buffer
  iterations: number
  digest: Buffer
  hash: string
}

async function tryKeyslot(source: RangeSource, slot: OpenableKeyslot, check: VolumeKeyCheck, passphrase: Buffer, opts: UnlockOptions): Promise<Buffer | undefined> {
  const derived = await deriveKey(slot.kdf, passphrase, slot.area.keySize, slot.id, opts)
  let material: Buffer | undefined
  let candidate: Buffer | undefined
  try {
    const cipher = new SectorCipher(slot.area.encryption, derived)
    try {
      material = cipher.decrypt(await source.read(slot.area.offset, slot.area.length, opts.signal), 0, 512)
    } finally {
      cipher.destroy()
    }
    candidate = afMerge(material, slot.keySize, slot.stripes, slot.afHash)
    const computed = await pbkdf2Async(candidate, check.salt, check.iterations, check.digest.length, check.hash, opts.signal)
    const ok = timingSafeEqual(computed, check.digest)
    computed.fill(0)
    if (!ok) return undefined
    const key = candidate
    candidate = undefined
    return key
  } finally {
    derived.fill(0)
    material?.fill(0)
    candidate?.fill(0)
  }
}

/** The LUKS2 candidates (candidateKeyslots) in the shape both versions share. */
export function luks2Openable(header: Luks2Header, headerSize: number): { slots: OpenableKeyslot[]; skipped: string[]; check: VolumeKeyCheck } {
  const { slots, skipped } = candidateKeyslots(header, headerSize)
  const d = header.segmentDigest
  return {
    skipped,
    check: { salt: d.salt, iterations: d.iterations, digest: d.digest, hash: d.hash },
    slots: slots.map((k) => ({
      id: k.id,
      kdf: k.kdf,
      area: { offset: k.area.offset, length: Math.ceil((k.keySize * k.af.stripes) / 512) * 512, encryption: k.area.encryption, keySize: k.area.keySize },
      keySize: k.keySize,
      stripes: k.af.stripes,
      afHash: k.af.hash,
    })),
  }
}

/**
 * Opens a keyslot with `passphrase` (the key file's bytes) and returns the volume key.
 * `source` holds the header and keyslot areas: the image itself, or a detached header.
 * The work spent deriving keys is bounded by `opts.budget` (docs/kdf-budget.md), and `opts.signal`
 * stops a derivation in progress at once.
 */
export async function unlockVolumeKey(source: RangeSource, header: Luks2Header, passphrase: Buffer, opts: UnlockOptions = {}): Promise<Unlocked> {
  const logger = opts.logger ?? silentLogger
  const { slots, skipped, check } = luks2Openable(header, source.size)
  for (const reason of skipped) logger.debug(reason)
  if (slots.length === 0) {
    throw new LuksError('LUKS_NO_USABLE_KEYSLOT', `no usable keyslot in the LUKS2 header${skipped.length ? ` (${skipped.join('; ')})` : ''}; add one with cryptsetup luksAddKey`)
  }
  return openKeyslots(source, slots, check, passphrase, opts)
}

/**
 * Tries `slots` in order within the KDF budget until one yields a key that `check` confirms.
 * A keyslot that alone costs more than the budget is skipped with a warning: if no other opens,
 * the budget is what stood in the way and the error says so.
 */
export async function openKeyslots(source: RangeSource, slots: OpenableKeyslot[], check: VolumeKeyCheck, passphrase: Buffer, opts: UnlockOptions = {}): Promise<Unlocked> {
  const logger = opts.logger ?? silentLogger
  const budget = new KdfBudgetTracker(opts.budget)
  let tooCostly: LuksError | undefined
  const tried: string[] = []
  for (const slot of slots) {
    const kdf = slot.kdf
    const refusal = budget.overBudget(slot, check) ?? memoryRefusal(slot, opts)
    if (refusal) {
      logger.warn({ keyslot: slot.id, code: refusal.code }, refusal.message)
      tooCostly ??= refusal
      continue
    }
    budget.charge(slot, check)
    const started = Date.now()
    logger.info(
      { keyslot: slot.id, kdf: kdf.type, ...('memory' in kdf ? { memoryMiB: Math.round(kdf.memory / 1024) } : {}), ...('iterations' in kdf ? { iterations: kdf.iterations } : {}) },
      `trying keyslot ${slot.id} (${kdf.type})`,
    )
    const key = await tryKeyslot(source, slot, check, passphrase, opts)
    tried.push(slot.id)
    if (key) {
      logger.info({ keyslot: slot.id, ms: Date.now() - started }, `keyslot ${slot.id} opened`)
      return { volumeKey: key, keyslot: slot.id }
    }
    logger.debug({ keyslot: slot.id, ms: Date.now() - started }, `keyslot ${slot.id} does not open with this key`)
  }
  if (tooCostly) {
    throw tried.length === 0 ? tooCostly : new LuksError(tooCostly.code, `${tooCostly.message} (keyslot(s) ${tried.join(', ')} were tried and do not open with this key)`)
  }
  throw new LuksError(
    'LUKS_WRONG_KEY',
    'no keyslot can be opened with this key: the key does not match the image (check raw_key / the released key, and that the blob is the image it was made for)',
  )
}

function memoryRefusal(slot: OpenableKeyslot, opts: UnlockOptions): LuksError | undefined {
  if (slot.kdf.type !== 'argon2i' && slot.kdf.type !== 'argon2id') return undefined
  try {
    checkArgon2Memory(slot.kdf, slot.id, opts)
    return undefined
  } catch (err) {
    if (err instanceof LuksError) return err
    throw err
  }
}

/**
 * For the kernel path, where cryptsetup derives the keys and may try every keyslot: refuses a
 * header whose candidate keyslots together cost more than the budget, before cryptsetup runs.
 */
export function checkUnlockCost(slots: OpenableKeyslot[], check: VolumeKeyCheck, opts: Pick<UnlockOptions, 'budget'> = {}): void {
  const budget = new KdfBudgetTracker(opts.budget)
  for (const slot of slots) {
    const refusal = budget.overBudget(slot, check)
    if (refusal) throw refusal
    budget.charge(slot, check)
  }
}
