import { X509Certificate } from 'node:crypto'
import { compactVerify, decodeProtectedHeader } from 'jose'
import { SkrError } from './errors.js'
import { verifyServerChain } from './trust.js'

export interface ReleasePayload {
  request?: { 'api-version'?: string; enc?: string; kid?: string }
  response?: { key?: { key?: { kid?: string; kty?: string; key_ops?: string[]; key_hsm?: string } } }
}

/**
 * Verifies the key-release JWS (docs/key-release.md#release-jws): the signature with the x5c leaf, the leaf's chain to a
 * trusted root, and that the leaf is the vault's own TLS certificate. Returns the payload.
 */
export async function verifyReleaseJws(jws: string, o: { host: string; roots: X509Certificate[]; at?: Date }): Promise<ReleasePayload> {
  if (jws.split('.').length !== 3) throw new SkrError('SKR_JWS_INVALID', 'the key release answer is not a compact JWS (three dot-separated parts)')
  let header: { x5c?: unknown; alg?: string }
  try {
    header = decodeProtectedHeader(jws) as typeof header
  } catch (err) {
    throw new SkrError('SKR_JWS_INVALID', `the key release JWS header does not decode: ${(err as Error).message}`, { cause: err })
  }
  if (!Array.isArray(header.x5c) || header.x5c.length === 0 || !header.x5c.every((c) => typeof c === 'string')) {
    throw new SkrError('SKR_JWS_INVALID', 'the key release JWS has no x5c certificate chain')
  }
  let chain: X509Certificate[]
  try {
    chain = (header.x5c as string[]).map((c) => new X509Certificate(Buffer.from(c, 'base64')))
  } catch (err) {
    throw new SkrError('SKR_JWS_INVALID', `an x5c certificate of the key release JWS does not parse: ${(err as Error).message}`, { cause: err })
  }
  try {
    await compactVerify(jws, chain[0]!.publicKey, { algorithms: ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384'] })
  } catch (err) {
    throw new SkrError('SKR_JWS_SIGNATURE', `the key release JWS signature does not verify with its x5c leaf (${header.alg ?? 'no alg'}): ${(err as Error).message}`, {
      cause: err,
    })
  }
  verifyServerChain(chain, o)
  const payload = jws.split('.')[1]!
  try {
    return JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as ReleasePayload
  } catch (err) {
    throw new SkrError('SKR_JWS_INVALID', 'the key release JWS payload is not JSON', { cause: err })
  }
}
