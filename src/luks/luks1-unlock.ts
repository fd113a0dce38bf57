import { timingSafeEqual } from 'node:crypto'
import type { RangeSource } from '../storage/range-source.js'
import { silentLogger } from '../log/logger.js'
import type { Luks1Header, Luks1Keyslot } from './luks1-header.js'
import { afMerge } from './af.js'
import { deriveKey, pbkdf2Async } from './kdf.js'
import { SectorCipher } from './sector-cipher.js'
import { LuksError } from './errors.js'
import { userspaceRefusal } from './cipher-policy.js'
import type { UnlockOptions, Unlocked } from './unlock.js'

/** LUKS1's volume key check: PBKDF2 over the candidate with the header's salt, 20 bytes. */
const MK_DIGEST_SIZE = 20

async function tryKeyslot(source: RangeSource, header: Luks1Header, slot: Luks1Keyslot, passphrase: Buffer, opts: UnlockOptions): Promise<Buffer | undefined> {
  const keySize = header.segment.keySize
  const derived = await deriveKey({ type: 'pbkdf2', hash: header.hash, iterations: slot.iterations, salt: slot.salt }, passphrase, keySize, slot.id, opts)
  let material: Buffer | undefined
  let candidate: Buffer | undefined
  try {
    // The AF material is encrypted with the data cipher in 512-byte sectors counted from the slot's start.
    const cipher = new SectorCipher(header.segment.encryption, derived)
    try {
      material = cipher.decrypt(await source.read(slot.offset, slot.length, opts.signal), 0, 512)
    } finally {
      cipher.destroy()
    }
    candidate = afMerge(material, keySize, slot.stripes, header.hash)
    const check = await pbkdf2Async(candidate, header.mkDigestSalt, header.mkDigestIterations, MK_DIGEST_SIZE, header.hash)
    const ok = timingSafeEqual(check, header.mkDigest)
    check.fill(0)
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

/** Opens a LUKS1 keyslot with `passphrase` (the key file's bytes) and returns the volume key. */
export async function unlockLuks1VolumeKey(source: RangeSource, header: Luks1Header, passphrase: Buffer, opts: UnlockOptions = {}): Promise<Unlocked> {
  const logger = opts.logger ?? silentLogger
  if (header.userspaceProblem) throw userspaceRefusal(header.userspaceProblem)
  for (const slot of header.keyslots) {
    const started = Date.now()
    logger.info({ keyslot: slot.id, kdf: 'pbkdf2', luks: 1 }, `trying LUKS1 keyslot ${slot.id} (pbkdf2-${header.hash})`)
    const key = await tryKeyslot(source, header, slot, passphrase, opts)
    if (key) {
      logger.info({ keyslot: slot.id, ms: Date.now() - started }, `keyslot ${slot.id} opened`)
      return { volumeKey: key, keyslot: slot.id }
    }
    logger.debug({ keyslot: slot.id, ms: Date.now() - started }, `keyslot ${slot.id} does not open with this key`)
  }
  throw new LuksError('LUKS_WRONG_KEY', 'no keyslot can be opened with this key: the key does not match the image (check raw_key / the released key, and that the blob is the image it was made for)')
}
