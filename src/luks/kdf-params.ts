import { createHash } from 'node:crypto'

/**
 * What a keyslot's KDF is, as the header states it: PBKDF2 and Argon2 with their parameters, or
 * a KDF encfs does not implement (the slot is then skipped; other slots may still open). Callers
 * narrow on `type`, no casts. Also the limits of the engines that compute them.
 */
export interface Pbkdf2Kdf {
  type: 'pbkdf2'
  hash: string
  iterations: number
  salt: Buffer
}
export interface Argon2Kdf {
  type: 'argon2i' | 'argon2id'
  time: number
  memory: number
  cpus: number
  salt: Buffer
}
/** A KDF encfs cannot compute (scrypt...), or none (a keyslot type other than luks2): `name` as the header gives it. */
export interface UnsupportedKdf {
  type: 'unsupported'
  name: string
}
export type SupportedKdf = Pbkdf2Kdf | Argon2Kdf
export type Kdf = SupportedKdf | UnsupportedKdf

/** The KDF's name as cryptsetup prints it. */
export function kdfName(kdf: Kdf): string {
  return kdf.type === 'unsupported' ? kdf.name : kdf.type
}

/** cryptsetup's own ceiling for Argon2 memory (4 GiB). */
export const MAX_ARGON2_MEMORY_KIB = 4 * 1024 * 1024

/**
 * The most Argon2 memory encfs can compute with: hash-wasm addresses its WebAssembly memory with
 * signed 32-bit sizes, so memory + 1 KiB must stay below 2 GiB. Larger keyslots are refused up
 * front, naming this limit (see docs/kdf-budget.md).
 */
export const ARGON2_ENGINE_MAX_KIB = 2 * 1024 * 1024 - 2

/** Node's (OpenSSL's) PBKDF2 takes a signed 32-bit iteration count. */
export const MAX_PBKDF2_ITERATIONS = 2 ** 31 - 1

/**
 * The hashes PBKDF2, the AF splitter and the digest may name: cryptsetup's hashes that Node can
 * use in an HMAC. Extendable-output functions (shake128...) have no fixed size and fail in OpenSSL
 * as "Deriving bits failed"; they are refused by name instead.
 */
export const HASHES = ['sha1', 'sha224', 'sha256', 'sha384', 'sha512', 'sha512-224', 'sha512-256', 'sha3-224', 'sha3-256', 'sha3-384', 'sha3-512', 'ripemd160', 'whirlpool', 'sm3']
const hashSizes = new Map<string, number | undefined>()

/** The digest size of a hash LUKS2 may use, or undefined when encfs does not support it. */
export function hashSize(hash: string): number | undefined {
  if (!hashSizes.has(hash)) {
    let size: number | undefined
    if (HASHES.includes(hash)) {
      try {
        size = createHash(hash).digest().length
      } catch {
        size = undefined // not in this OpenSSL build (whirlpool needs the legacy provider)
      }
    }
    hashSizes.set(hash, size)
  }
  return hashSizes.get(hash)
}
