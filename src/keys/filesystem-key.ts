import { createPrivateKey, type KeyObject } from 'node:crypto'
import type { ReleasedKey } from '../skr/released-key.js'
import { deriveKeyFromRsa, DEFAULT_DERIVATION_LABEL } from '../skr/derive.js'
import { KeyError } from './errors.js'

/** The key that protects a filesystem: as released (oct bytes, RSA/EC PKCS#8 DER), or an RSA key in hand (import-key). */
export type ProtectingKey = Pick<ReleasedKey, 'kty' | 'material'> | { kty: 'RSA'; privateKey: KeyObject }

/** `key_derivation` of the configuration: the HKDF salt (hex) and label for RSA keys. */
export interface KeyDerivation {
  salt: string
  label?: string
}

/** Filesystem keys are 32 bytes (the key file a LUKS keyslot was made with). */
export const FILESYSTEM_KEY_BYTES = 32

/**
 * The bytes that open a filesystem's keyslot, from the key that protects it (docs/key-release.md#filesystem-keys):
 * an oct key's 32 bytes are the key file; an RSA key becomes 32 bytes by HKDF-SHA256 with the
 * filesystem's salt and label. `what` names the key in errors ("azure_filesystems[0].key: the
 * released key k1"). The caller owns the result and zeroes it; the input is not consumed.
 */
export function filesystemKey(key: ProtectingKey, derivation: KeyDerivation, what: string): Buffer {
  if ('privateKey' in key) return deriveKeyFromRsa(key.privateKey, derivation.salt, derivation.label || DEFAULT_DERIVATION_LABEL)
  switch (key.kty) {
    case 'oct':
      if (key.material.length !== FILESYSTEM_KEY_BYTES)
        throw new KeyError('KEY_RELEASED_SIZE', `${what} is an oct key of ${key.material.length} bytes; filesystem keys are ${FILESYSTEM_KEY_BYTES} bytes`)
      return Buffer.from(key.material)
    case 'RSA':
      return deriveKeyFromRsa(createPrivateKey({ key: key.material, format: 'der', type: 'pkcs8' }), derivation.salt, derivation.label || DEFAULT_DERIVATION_LABEL)
    default:
      throw new KeyError('KEY_RELEASED_TYPE', `${what} is ${key.kty}; filesystems take oct or RSA keys`)
  }
}
