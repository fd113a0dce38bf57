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

/** Raw keys only (the opt-in test mode); releaseKeyProvider handles both kinds. */
export const rawKeyProvider: KeyProvider = {
  async keyFor(spec, { index }) {
    if (spec.kind === 'raw') return decodeRawKey(spec.hex, `azure_filesystems[${index}]`)
    throw new KeyError('KEY_RELEASE_UNAVAILABLE', `azure_filesystems[${index}].key: this key provider takes raw keys only; secure key release needs the release key provider`)
  },
}
