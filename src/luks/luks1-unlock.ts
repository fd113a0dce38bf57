import type { RangeSource } from '../storage/range-source.js'
import type { Luks1Header } from './luks1-header.js'
import { userspaceRefusal } from './cipher-policy.js'
import { openKeyslots, type OpenableKeyslot, type UnlockOptions, type Unlocked, type VolumeKeyCheck } from './unlock.js'

/**
 * LUKS1 keyslots in the shape both versions share: PBKDF2 with the header's hash, the AF material
 * encrypted with the data cipher, and the volume key confirmed by the header's 20-byte digest.
 */
export function luks1Openable(header: Luks1Header): { slots: OpenableKeyslot[]; check: VolumeKeyCheck } {
  const { keySize, encryption } = header.segment
  return {
    check: { salt: header.mkDigestSalt, iterations: header.mkDigestIterations, digest: header.mkDigest, hash: header.hash },
    slots: header.keyslots.map((k) => ({
      id: k.id,
      kdf: { type: 'pbkdf2', hash: header.hash, iterations: k.iterations, salt: k.salt },
      area: { offset: k.offset, length: k.length, encryption, keySize },
      keySize,
      stripes: k.stripes,
      afHash: header.hash,
    })),
  }
}

/** Opens a LUKS1 keyslot with `passphrase` (the key file's bytes) and returns the volume key. */
export async function unlockLuks1VolumeKey(source: RangeSource, header: Luks1Header, passphrase: Buffer, opts: UnlockOptions = {}): Promise<Unlocked> {
  if (header.userspaceProblem) throw userspaceRefusal(header.userspaceProblem)
  const { slots, check } = luks1Openable(header)
  return openKeyslots(source, slots, check, passphrase, opts)
}
