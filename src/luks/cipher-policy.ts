import type { ErrorCode } from '../errors/codes.js'
import { LuksError } from './errors.js'
import { checkCipher } from './sector-cipher.js'

/**
 * Two kinds of refusal for a header's cipher. A cipher that stores data as plaintext (null,
 * ECB: CVE-2025-59054) is refused in every mode, before cryptsetup sees it. A sound cipher that
 * encfs's own decryption lacks (serpent, twofish, integrity...) only stops the userspace path:
 * cryptsetup (--unlock kernel) opens it, as the Go sidecar did.
 */
export function refuseHostileCipher(spec: string, where: string): void {
  const [name = '', mode = ''] = spec.split(/-(.*)/s)
  if (name === 'cipher_null' || mode === '' || mode === 'null' || mode === 'ecb' || mode.startsWith('ecb-')) {
    throw new LuksError(
      'LUKS_CIPHER_UNSUPPORTED',
      `unsupported cipher "${spec}" for the ${where}: ${name === 'cipher_null' || mode === 'null' ? 'a null cipher stores data in plaintext' : "a cipher without an IV per sector leaks the data's structure"}: this header may have been tampered with; refused in every unlock mode`,
    )
  }
}

/** Why encfs's userspace decryption cannot handle `spec` with `keySize` bytes (undefined: it can). */
export function userspaceCipherProblem(spec: string, keySize: number, where: string): string | undefined {
  try {
    checkCipher(spec, keySize, where)
    return undefined
  } catch (err) {
    return (err as Error).message
  }
}

/** Why only cryptsetup can open an image: the code the userspace path refuses it with, and why. */
export interface UserspaceProblem {
  code: ErrorCode
  message: string
}

/** The error for an image only cryptsetup can open, naming the mode that can. */
export function userspaceRefusal(problem: UserspaceProblem): LuksError {
  return new LuksError(
    problem.code,
    `${problem.message}. encfs's userspace unlock cannot open this image; cryptsetup can: run remotefs with --unlock kernel (needs device-mapper and cryptsetup)`,
  )
}
