import { timingSafeEqual } from 'node:crypto'
import type { RangeSource } from '../storage/range-source.js'
import { silentLogger, type Logger } from '../log/logger.js'
import type { Luks2Header } from './header.js'
import type { Keyslot } from './metadata.js'
import { afMerge } from './af.js'
import { deriveKey, pbkdf2Async, type KdfOptions } from './kdf.js'
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

/** The keyslots that can yield the data segment's key, in the order cryptsetup tries them (spec §3.2). */
export function candidateKeyslots(header: Luks2Header, headerSize: number): { slots: Keyslot[]; skipped: string[] } {
  const segmentId = header.metadata.segments[0]!.id
  const skipped: string[] = []
  const slots: Keyslot[] = []
  const areaStart = 2 * header.hdrSize
  const areaEnd = Math.min(areaStart + header.metadata.keyslotsSize, headerSize)
  for (const slot of header.keyslots) {
    const bound = header.digests.some((d) => d.keyslots.includes(slot.id) && d.segments.includes(segmentId))
    if (slot.type !== 'luks2') continue
    if (!bound) {
      skipped.push(`keyslot ${slot.id}: not bound to the data segment`)
      continue
    }
    if (slot.unusable) {
      skipped.push(`keyslot ${slot.id}: unsupported ${slot.unusable}`)
      continue
    }
    const length = Math.ceil((slot.keySize * slot.af.stripes) / 512) * 512
    if (slot.area.offset < areaStart || slot.area.offset + length > areaEnd || slot.area.offset % 512 !== 0) {
      skipped.push(`keyslot ${slot.id}: area out of range`)
      continue
    }
    if (slot.priority === 0) {
      skipped.push(`keyslot ${slot.id}: priority "ignore"`)
      continue
    }
    slots.push(slot)
  }
  // Stable sort: priority 2 ("prefer") first, then the rest in id order.
  slots.sort((a, b) => (b.priority === 2 ? 1 : 0) - (a.priority === 2 ? 1 : 0) || Number(a.id) - Number(b.id))
  return { slots, skipped }
}

async function tryKeyslot(source: RangeSource, header: Luks2Header, slot: Keyslot, passphrase: Buffer, opts: UnlockOptions): Promise<Buffer | undefined> {
  const digest = header.digests.find((d) => d.keyslots.includes(slot.id))!
  const derived = await deriveKey(slot.kdf as never, passphrase, slot.area.keySize, slot.id, opts)
  let material: Buffer | undefined
  let candidate: Buffer | undefined
  try {
    const length = Math.ceil((slot.keySize * slot.af.stripes) / 512) * 512
    const cipher = new SectorCipher(slot.area.encryption, derived)
    try {
      material = cipher.decrypt(await source.read(slot.area.offset, length, opts.signal), 0, 512)
    } finally {
      cipher.destroy()
    }
    candidate = afMerge(material, slot.keySize, slot.af.stripes, slot.af.hash)
    const check = await pbkdf2Async(candidate, digest.salt, digest.iterations, digest.digest.length, digest.hash)
    const ok = timingSafeEqual(check, digest.digest)
    check.fill(0)
    if (ok) {
      const key = candidate
      candidate = undefined
      return key
    }
    return undefined
  } finally {
    derived.fill(0)
    material?.fill(0)
    candidate?.fill(0)
  }
}

/**
 * Opens a keyslot with `passphrase` (the key file's bytes) and returns the volume key.
 * `source` holds the header and keyslot areas: the image itself, or a detached header.
 */
export async function unlockVolumeKey(source: RangeSource, header: Luks2Header, passphrase: Buffer, opts: UnlockOptions = {}): Promise<Unlocked> {
  const logger = opts.logger ?? silentLogger
  const { slots, skipped } = candidateKeyslots(header, source.size)
  for (const reason of skipped) logger.debug(reason)
  if (slots.length === 0) {
    throw new LuksError('LUKS_NO_USABLE_KEYSLOT', `no usable keyslot in the LUKS2 header${skipped.length ? ` (${skipped.join('; ')})` : ''}; add one with cryptsetup luksAddKey`)
  }
  let memoryError: LuksError | undefined
  let tried = 0
  for (const slot of slots) {
    const kdf = slot.kdf
    const started = Date.now()
    logger.info({ keyslot: slot.id, kdf: kdf.type, ...('memory' in kdf ? { memoryMiB: Math.round(kdf.memory / 1024) } : {}) }, `trying keyslot ${slot.id} (${kdf.type})`)
    let key: Buffer | undefined
    try {
      key = await tryKeyslot(source, header, slot, passphrase, opts)
      tried++
    } catch (err) {
      if (err instanceof LuksError && err.code === 'LUKS_KDF_MEMORY') {
        logger.warn(err.message)
        memoryError = err
        continue
      }
      throw err
    }
    if (key) {
      logger.info({ keyslot: slot.id, ms: Date.now() - started }, `keyslot ${slot.id} opened`)
      return { volumeKey: key, keyslot: slot.id }
    }
    logger.debug({ keyslot: slot.id, ms: Date.now() - started }, `keyslot ${slot.id} does not open with this key`)
  }
  // Only the memory limit stood in the way when no slot could even be tried.
  if (memoryError && tried === 0) throw memoryError
  throw new LuksError('LUKS_WRONG_KEY', 'no keyslot can be opened with this key: the key does not match the image (check raw_key / the released key, and that the blob is the image it was made for)')
}
