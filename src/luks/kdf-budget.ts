import { LuksError } from './errors.js'
import { ARGON2_ENGINE_MAX_KIB, type Kdf } from './kdf-params.js'

/** What the budget looks at: a keyslot's KDF, and the PBKDF2 count of the check that confirms its key. */
type Slot = { id: string; kdf: Kdf }
type Check = { iterations: number }

/**
 * How much key-derivation work one unlock may spend, summed over the keyslots it tries (each
 * keyslot's KDF plus its digest check). The header comes from storage an attacker may control,
 * and a keyslot asking 2^31 PBKDF2 iterations would otherwise stall start-up for many minutes.
 * The defaults cover what cryptsetup writes for real images with room to spare; the reasoning
 * and measurements are in docs/kdf-budget.md.
 */
export interface KdfBudget {
  /** PBKDF2 iterations, as `cryptsetup luksDump` prints them (keyslot KDFs and digests). */
  pbkdf2Iterations: number
  /** Argon2 time cost x memory in MiB ("MiB-passes"): cryptsetup's default keyslot (t=4, 1 GiB) is 4096. */
  argon2MiBPasses: number
  /** The most memory one Argon2 keyslot may use, in KiB. */
  argon2MemoryKiB: number
}

export const DEFAULT_KDF_BUDGET: KdfBudget = {
  pbkdf2Iterations: 50_000_000,
  argon2MiBPasses: 32 * 1024,
  argon2MemoryKiB: ARGON2_ENGINE_MAX_KIB,
}

/** The flags that set each part, for messages (src/cli/kdf-options.ts defines them). */
export const BUDGET_FLAGS = {
  pbkdf2Iterations: '--kdf-max-pbkdf2-iterations',
  argon2MiBPasses: '--kdf-max-argon2-cost',
  argon2MemoryKiB: '--kdf-max-argon2-memory',
} as const

export interface KdfCost {
  pbkdf2: number
  argon2: number
}

/** What trying one keyslot costs: its KDF and the PBKDF2 of the digest that confirms its key. */
export function keyslotCost(slot: Slot, digest: Check): KdfCost {
  const kdf = slot.kdf
  const pbkdf2 = (kdf.type === 'pbkdf2' ? kdf.iterations : 0) + digest.iterations
  const argon2 = kdf.type === 'argon2i' || kdf.type === 'argon2id' ? kdf.time * (kdf.memory / 1024) : 0
  return { pbkdf2, argon2 }
}

function describe(slot: Slot, digest: Check): string {
  const kdf = slot.kdf
  switch (kdf.type) {
    case 'pbkdf2':
      return `${kdf.iterations} pbkdf2 iterations plus ${digest.iterations} for the digest`
    case 'argon2i':
    case 'argon2id':
      return `Argon2 time ${kdf.time} x ${Math.round(kdf.memory / 1024)} MiB (${Math.round(kdf.time * (kdf.memory / 1024))} MiB-passes) plus ${digest.iterations} pbkdf2 iterations for the digest`
    case 'unsupported':
      return `${kdf.name} (not computed) plus ${digest.iterations} pbkdf2 iterations for the digest`
  }
}

/** Counts what an unlock spends and refuses what would go beyond the budget. */
export class KdfBudgetTracker {
  readonly budget: KdfBudget
  private spent: KdfCost = { pbkdf2: 0, argon2: 0 }
  private readonly tried: string[] = []

  constructor(budget: Partial<KdfBudget> = {}) {
    this.budget = { ...DEFAULT_KDF_BUDGET, ...Object.fromEntries(Object.entries(budget).filter(([, v]) => v !== undefined)) }
  }

  /** A keyslot that alone costs more than the whole budget: the error to report, else undefined. */
  overBudget(slot: Slot, digest: Check): LuksError | undefined {
    const cost = keyslotCost(slot, digest)
    const b = this.budget
    if (cost.pbkdf2 <= b.pbkdf2Iterations && cost.argon2 <= b.argon2MiBPasses) return undefined
    const which =
      cost.pbkdf2 > b.pbkdf2Iterations
        ? `the budget per unlock is ${b.pbkdf2Iterations} pbkdf2 iterations (${BUDGET_FLAGS.pbkdf2Iterations})`
        : `the budget per unlock is ${b.argon2MiBPasses} Argon2 MiB-passes (${BUDGET_FLAGS.argon2MiBPasses})`
    return new LuksError(
      'LUKS_KDF_BUDGET',
      `keyslot ${slot.id} asks for ${describe(slot, digest)}; ${which}. A header asking this much is hostile or was made with an unusual --iter-time: raise the budget only if you trust the image (see docs/kdf-budget.md)`,
    )
  }

  /** Records that `slot` is about to be tried; throws LUKS_KDF_BUDGET when that would exceed the budget. */
  charge(slot: Slot, digest: Check): void {
    const cost = keyslotCost(slot, digest)
    const next = { pbkdf2: this.spent.pbkdf2 + cost.pbkdf2, argon2: this.spent.argon2 + cost.argon2 }
    const b = this.budget
    if (next.pbkdf2 > b.pbkdf2Iterations || next.argon2 > b.argon2MiBPasses) {
      const total =
        next.pbkdf2 > b.pbkdf2Iterations
          ? `${next.pbkdf2} pbkdf2 iterations, beyond the budget of ${b.pbkdf2Iterations} (${BUDGET_FLAGS.pbkdf2Iterations})`
          : `${Math.round(next.argon2)} Argon2 MiB-passes, beyond the budget of ${b.argon2MiBPasses} (${BUDGET_FLAGS.argon2MiBPasses})`
      throw new LuksError(
        'LUKS_KDF_BUDGET',
        `keyslot ${slot.id} (${describe(slot, digest)}) would bring the key derivation work of this unlock to ${total}, after keyslot(s) ${this.tried.join(', ')}. A header asking this much is hostile or was made with an unusual --iter-time: raise the budget only if you trust the image (see docs/kdf-budget.md)`,
      )
    }
    this.spent = next
    this.tried.push(slot.id)
  }
}
