import { createHash, generateKeyPair, type KeyObject } from 'node:crypto'

export interface WrappingKey {
  privateKey: KeyObject
  /** The exact runtime-data bytes the Go sidecar sends: a JWK set of the public key (docs/key-release.md#wrapping-key). */
  jwks: Buffer
}

/**
 * `{"keys":[{"e","key_ops":["encrypt"],"kid","kty":"RSA","n"}]}`, compact, members sorted, kid the
 * RFC 7638 thumbprint: MAA hashes these bytes into report_data, so they must match Go's exactly.
 */
export function jwkSetOf(publicKey: KeyObject): Buffer {
  const jwk = publicKey.export({ format: 'jwk' }) as { n: string; e: string }
  const thumbprint = createHash('sha256').update(`{"e":"${jwk.e}","kty":"RSA","n":"${jwk.n}"}`).digest('base64url')
  return Buffer.from(`{"keys":[{"e":"${jwk.e}","key_ops":["encrypt"],"kid":"${thumbprint}","kty":"RSA","n":"${jwk.n}"}]}`)
}

/** A fresh RSA-2048 key per release, as the Go sidecar makes; it never leaves this process. */
export async function generateWrappingKey(): Promise<WrappingKey> {
  const { privateKey, publicKey } = await new Promise<{ privateKey: KeyObject; publicKey: KeyObject }>((resolve, reject) =>
    generateKeyPair('rsa', { modulusLength: 2048, publicExponent: 65537 }, (err, pub, priv) => (err ? reject(err) : resolve({ privateKey: priv, publicKey: pub }))),
  )
  return { privateKey, jwks: jwkSetOf(publicKey) }
}
