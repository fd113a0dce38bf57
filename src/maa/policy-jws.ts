import { createHash, createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto'
import { CompactSign } from 'jose'
import { MaaError } from './errors.js'

/** A policy-management key and its certificate: what signs policies and signer changes of an Isolated-mode instance. */
export interface PolicySigner {
  key: KeyObject
  certificate: X509Certificate
}

/** The key and certificate (PEM) as a signer, refused when they are not a pair. */
export function policySigner(keyPem: string, certPem: string): PolicySigner {
  let key: KeyObject
  let certificate: X509Certificate
  try {
    key = createPrivateKey(keyPem)
    certificate = new X509Certificate(certPem)
  } catch (err) {
    throw new MaaError('MAA_POLICY_SIGNER', `the policy signing key or certificate is not PEM of a private key and an X.509 certificate: ${(err as Error).message}`, {
      cause: err,
    })
  }
  if (key.asymmetricKeyType !== 'rsa') throw new MaaError('MAA_POLICY_SIGNER', `the policy signing key is ${key.asymmetricKeyType}; MAA takes RS256 signatures, so an RSA key`)
  if (!certificate.checkPrivateKey(key))
    throw new MaaError('MAA_POLICY_SIGNER', `the policy signing key is not the key of the certificate ${certificate.subject.replace(/\n/g, ', ')}`)
  return { key, certificate }
}

const b64url = (v: string | Buffer) => Buffer.from(v).toString('base64url')

/** An unsecured JWS (alg none, empty signature) of `payload` (undefined: an empty body). */
export const unsecuredJws = (payload: Record<string, unknown> | undefined) =>
  `${b64url(JSON.stringify({ alg: 'none' }))}.${b64url(payload === undefined ? '' : JSON.stringify(payload))}.`

/**
 * A JWS as the attestation management API takes it (docs/attestation-policy.md#policy-jws): RS256
 * with the certificate in x5c when a signer is given, else unsecured (alg none, empty signature).
 * `payload` undefined is the empty body of a reset.
 */
export async function managementJws(payload: Record<string, unknown> | undefined, signer?: PolicySigner): Promise<string> {
  const body = payload === undefined ? '' : JSON.stringify(payload)
  if (!signer) return unsecuredJws(payload)
  return new CompactSign(Buffer.from(body)).setProtectedHeader({ alg: 'RS256', x5c: [signer.certificate.raw.toString('base64')] }).sign(signer.key)
}

/** The body of a policy JWS: the policy text, base64url, under AttestationPolicy. */
export const storedPolicy = (text: string) => ({ AttestationPolicy: b64url(text) })

/** What MAA answers as x-ms-policy-token-hash: SHA-256 of the JWS exactly as sent, base64url. */
export const policyTokenHash = (jws: string) => createHash('sha256').update(jws, 'utf8').digest('base64url')

/** The certificate as the policy-management API names it in a JWK: kty and x5c. */
export const certificateJwk = (c: X509Certificate) => ({ kty: c.publicKey.asymmetricKeyType === 'ec' ? 'EC' : 'RSA', x5c: [c.raw.toString('base64')] })
