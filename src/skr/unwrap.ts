import { constants, createDecipheriv, privateDecrypt, type KeyObject } from 'node:crypto'
import { SkrError } from './errors.js'

/** The RSA-OAEP hash (also MGF1's) of each key wrapping algorithm Key Vault names (docs/key-release.md#unwrapping). */
export const OAEP_HASH: Record<string, string> = {
  CKM_RSA_AES_KEY_WRAP: 'sha1',
  RSA_AES_KEY_WRAP_256: 'sha256',
  RSA_AES_KEY_WRAP_384: 'sha384',
}
export const WRAP_ALGORITHMS = Object.keys(OAEP_HASH)

/** A released key blob cut in its two parts: RSA-OAEP of the key encryption key, then the AES key wrap. */
export function splitWrappedKey(ciphertext: Buffer, enc: string, rsaBytes: number): { hash: string; rsa: Buffer; kwp: Buffer } {
  const hash = OAEP_HASH[enc]
  if (!hash) throw new SkrError('SKR_UNWRAP_ALGORITHM', `unsupported key wrapping algorithm "${enc}" (expected ${WRAP_ALGORITHMS.join(', ')})`)
  const kwp = ciphertext.subarray(rsaBytes)
  if (ciphertext.length <= rsaBytes || kwp.length < 16 || kwp.length % 8 !== 0) {
    throw new SkrError(
      'SKR_UNWRAP_FAILED',
      `the released key blob has ${ciphertext.length} bytes: expected ${rsaBytes} bytes of RSA-OAEP followed by an AES key wrap of at least 16 bytes in 8-byte steps`,
    )
  }
  return { hash, rsa: ciphertext.subarray(0, rsaBytes), kwp }
}

/** AES key wrap with padding (RFC 5649) undone with the key encryption key, which is zeroed after. */
export function aesKeyUnwrap(kek: Buffer, kwp: Buffer): Buffer {
  try {
    if (![16, 24, 32].includes(kek.length)) throw new Error(`the key encryption key has ${kek.length} bytes`)
    const d = createDecipheriv(`id-aes${kek.length * 8}-wrap-pad`, kek, Buffer.from('A65959A6', 'hex'))
    return Buffer.concat([d.update(kwp), d.final()])
  } catch (err) {
    throw new SkrError('SKR_UNWRAP_FAILED', `AES key unwrap of the released key failed (integrity check): ${(err as Error).message}`, { cause: err })
  } finally {
    kek.fill(0)
  }
}

/**
 * Unwraps a key released by Key Vault / Managed HSM (docs/key-release.md#unwrapping): RSA-OAEP gives the AES key
 * encryption key, which unwraps the rest with AES key wrap with padding (RFC 5649).
 */
export function unwrapReleasedKey(ciphertext: Buffer, enc: string, wrappingKey: KeyObject): Buffer {
  const { hash, rsa, kwp } = splitWrappedKey(ciphertext, enc, (wrappingKey.asymmetricKeyDetails?.modulusLength ?? 2048) / 8)
  let kek: Buffer
  try {
    kek = privateDecrypt({ key: wrappingKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: hash }, rsa)
  } catch (err) {
    throw new SkrError('SKR_UNWRAP_FAILED', `RSA-OAEP (${hash}) decryption of the released key failed: it was wrapped for another key or with another algorithm than ${enc}`, {
      cause: err,
    })
  }
  return aesKeyUnwrap(kek, kwp)
}
