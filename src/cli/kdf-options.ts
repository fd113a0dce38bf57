import type { Argv } from 'yargs'
import { DEFAULT_KDF_BUDGET, BUDGET_FLAGS, type KdfBudget } from '../luks/kdf-budget.js'
import { ARGON2_ENGINE_MAX_KIB } from '../luks/kdf-params.js'
import { UsageError } from './fail.js'

function positive(flag: string, max = Number.MAX_SAFE_INTEGER) {
  return (v: unknown): number | undefined => {
    if (v === undefined || v === '') return undefined
    const n = Number(v)
    if (!Number.isSafeInteger(n) || n < 1 || n > max) throw new UsageError(`${flag} must be a whole number from 1 to ${max}, got ${String(v)}`)
    return n
  }
}

/**
 * The key-derivation budget flags (and their environment variables) of remotefs and the encfs
 * commands that unlock images; see docs/kdf-budget.md.
 */
export function kdfBudgetOptions<T>(y: Argv<T>, env: NodeJS.ProcessEnv = process.env) {
  return y
    .option('kdf-max-pbkdf2-iterations', {
      type: 'string',
      default: env.EncfsKdfMaxPbkdf2Iterations,
      coerce: positive(BUDGET_FLAGS.pbkdf2Iterations),
      describe: `most PBKDF2 iterations one unlock may spend over the keyslots it tries (default ${DEFAULT_KDF_BUDGET.pbkdf2Iterations}; env EncfsKdfMaxPbkdf2Iterations)`,
    })
    .option('kdf-max-argon2-cost', {
      type: 'string',
      default: env.EncfsKdfMaxArgon2Cost,
      coerce: positive(BUDGET_FLAGS.argon2MiBPasses),
      describe: `most Argon2 work one unlock may spend, as time x memory in MiB (default ${DEFAULT_KDF_BUDGET.argon2MiBPasses}: eight of cryptsetup's default keyslots; env EncfsKdfMaxArgon2Cost)`,
    })
    .option('kdf-max-argon2-memory', {
      type: 'string',
      default: env.EncfsKdfMaxArgon2Memory,
      coerce: positive(BUDGET_FLAGS.argon2MemoryKiB, Math.floor(ARGON2_ENGINE_MAX_KIB / 1024)),
      describe: `most memory in MiB one Argon2 keyslot may use (default and maximum ${Math.floor(ARGON2_ENGINE_MAX_KIB / 1024)}; env EncfsKdfMaxArgon2Memory)`,
    })
}

export function kdfBudgetFrom(args: Record<string, unknown>): Partial<KdfBudget> {
  const get = (flag: string): number | undefined => args[flag.slice(2)] as number | undefined
  const memoryMiB = get(BUDGET_FLAGS.argon2MemoryKiB)
  return {
    pbkdf2Iterations: get(BUDGET_FLAGS.pbkdf2Iterations),
    argon2MiBPasses: get(BUDGET_FLAGS.argon2MiBPasses),
    argon2MemoryKiB: memoryMiB === undefined ? undefined : Math.min(memoryMiB * 1024, ARGON2_ENGINE_MAX_KIB),
  }
}
