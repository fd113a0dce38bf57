import type { RangeSource } from '../storage/range-source.js'
import type { LuksHeader } from './header.js'
import { checkUnlockCost, luks2Openable, unlockVolumeKey, type UnlockOptions, type Unlocked } from './unlock.js'
import { luks1Openable, unlockLuks1VolumeKey } from './luks1-unlock.js'
import { userspaceRefusal } from './cipher-policy.js'

/**
 * The volume key of a LUKS1 or LUKS2 image, opened in userspace with `passphrase`. An image
 * only cryptsetup can open is refused with the mode that can (--unlock kernel).
 */
export async function unlockAnyVolumeKey(source: RangeSource, header: LuksHeader, passphrase: Buffer, opts: UnlockOptions = {}): Promise<Unlocked> {
  if (header.userspaceProblem) throw userspaceRefusal(header.userspaceProblem)
  return header.version === 1 ? unlockLuks1VolumeKey(source, header, passphrase, opts) : unlockVolumeKey(source, header, passphrase, opts)
}

/** For the kernel path: refuses a LUKS1 or LUKS2 header whose keyslots cost more than the budget, before cryptsetup runs. */
export function checkAnyUnlockCost(header: LuksHeader, headerSize: number, opts: Pick<UnlockOptions, 'budget'> = {}): void {
  const { slots, check } = header.version === 1 ? luks1Openable(header) : luks2Openable(header, headerSize)
  checkUnlockCost(slots, check, opts)
}
