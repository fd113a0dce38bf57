import type { Logger } from '../log/logger.js'
import { KeyError } from './errors.js'
import { decodeRawKey } from './raw-key.js'

/** Where a filesystem's key comes from, as config/plan.ts resolved it. */
export type KeySpec =
  | { kind: 'raw'; hex: string }
  | {
      kind: 'release'
      kid: string
      kty?: string
      maaEndpoint: string
      akvEndpoint: string
      bearerToken?: string
      derivation: { salt: string; label: string }
    }

/**
 * Gives the bytes that open a filesystem's LUKS keyslot. The caller owns the returned Buffer and
 * zeroes it when done; it never reaches a file or a log line.
 */
export interface KeyProvider {
  keyFor(spec: KeySpec, context: { index: number; logger: Logger; signal?: AbortSignal }): Promise<Buffer>
}

/**
 * The key provider of this build: raw keys (opt-in test mode). Secure key release plugs in here
 * by handling `release` specs.
 */
export const rawKeyProvider: KeyProvider = {
  async keyFor(spec, { index }) {
    if (spec.kind === 'raw') return decodeRawKey(spec.hex, `azure_filesystems[${index}]`)
    throw new KeyError('KEY_RELEASE_UNAVAILABLE',
      `azure_filesystems[${index}].key: secure key release (MAA + Key Vault) is not available in this build yet; ` +
      'for local testing use raw_key with --allow-raw-key')
  },
}
