import { hkdfSync, type KeyObject } from 'node:crypto'
import { SkrError } from './errors.js'

/** The Go sidecar's default HKDF label for RSA-derived filesystem keys. */
export const DEFAULT_DERIVATION_LABEL = 'Symmetric Encryption Key'

/**
 * The 32-byte LUKS passphrase the Go sidecar derives from a released RSA key (docs/key-release.md#rsa-key-derivation):
 * HKDF-SHA256 over the private exponent as minimal big-endian bytes, salt = hex, info = label.
 */
export function deriveKeyFromRsa(privateKey: KeyObject, saltHex: string, label = DEFAULT_DERIVATION_LABEL): Buffer {
  if (privateKey.asymmetricKeyType !== 'rsa')
    throw new SkrError('SKR_DERIVE_FAILED', `key derivation needs an RSA private key, got ${privateKey.asymmetricKeyType ?? privateKey.type}`)
  if (!/^([0-9a-fA-F]{2})*$/.test(saltHex)) throw new SkrError('SKR_DERIVE_FAILED', 'key_derivation.salt must be hex')
  const d = Buffer.from((privateKey.export({ format: 'jwk' }) as { d: string }).d, 'base64url')
  let start = 0
  while (start < d.length - 1 && d[start] === 0) start++
  const ikm = d.subarray(start)
  try {
    return Buffer.from(hkdfSync('sha256', ikm, Buffer.from(saltHex, 'hex'), Buffer.from(label || DEFAULT_DERIVATION_LABEL, 'utf8'), 32))
  } finally {
    d.fill(0)
  }
}
