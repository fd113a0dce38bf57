import { createHash, X509Certificate } from 'node:crypto'
import { silentLogger, type Logger } from '../log/logger.js'
import { request } from '../http/request.js'
import { serviceErrorDetail } from '../http/error-detail.js'
import { identityCredential, type IdentityConfig } from '../identity/credential.js'
import { MaaError } from './errors.js'
import { certificateJwk, managementJws, policyTokenHash, storedPolicy, type PolicySigner } from './policy-jws.js'
import { instanceUrl, type MaaSigningKeys } from './signing-keys.js'
import { verifyMaaToken } from './token-verify.js'

export interface AdminOptions {
  /** MAA host[:port], no scheme. */
  endpoint: string
  /** A bearer token for https://attest.azure.net (attestationAdminToken). */
  bearer: string
  ca?: string[]
  logger?: Logger
  signal?: AbortSignal
  keys?: MaaSigningKeys
  /** Default 2020-10-01, the version @azure/attestation speaks. */
  apiVersion?: string
}

/** The management plane's audience (scope `https://attest.azure.net/.default`). */
export const ATTESTATION_RESOURCE = 'https://attest.azure.net'

/** A token for the attestation management plane from the managed or workload identity. */
export async function attestationAdminToken(
  endpoint: string,
  identity: IdentityConfig | undefined,
  o: { logger?: Logger; signal?: AbortSignal; retries?: number } = {},
): Promise<string> {
  const credential = identityCredential(
    identity,
    {
      what: `${ATTESTATION_RESOURCE} (attestation policy management of ${endpoint})`,
      needs: 'has the Attestation Contributor role on the attestation provider',
      error: (message, cause) => new MaaError('MAA_ADMIN_IDENTITY', message, { cause }),
    },
    { logger: o.logger, retries: o.retries ?? 3 },
  )
  const token = await credential.getToken(`${ATTESTATION_RESOURCE}/.default`, { abortSignal: o.signal })
  if (!token?.token) throw new MaaError('MAA_ADMIN_IDENTITY', `the identity answered no token for ${ATTESTATION_RESOURCE}`)
  return token.token
}

function refusal(status: number, what: string, o: AdminOptions, text: string): MaaError {
  const detail = serviceErrorDetail(text, 400)
  const hint =
    status === 401 || status === 403
      ? ` (a token for ${ATTESTATION_RESOURCE} from an identity with the Attestation Contributor role; on an Isolated instance, a policy-management key)`
      : ''
  const unavailable = status === 408 || status === 429 || status >= 500
  return new MaaError(unavailable ? 'MAA_UNAVAILABLE' : 'MAA_POLICY_REFUSED', `${what} at ${o.endpoint} failed with HTTP ${status} ${detail}${hint}`, { upstreamStatus: status })
}

/** One management call: the answer's token verified as MAA's own (signature, issuer, validity), its claims returned. */
async function call(o: AdminOptions, what: string, method: 'GET' | 'PUT' | 'POST', path: string, body?: { type: string; text: string }): Promise<Record<string, unknown>> {
  const url = `${instanceUrl(o.endpoint)}${path}?api-version=${o.apiVersion ?? '2020-10-01'}`
  const res = await request(url, {
    method,
    headers: { authorization: `Bearer ${o.bearer}`, accept: 'application/json', ...(body ? { 'content-type': body.type } : {}) },
    body: body?.text,
    what,
    attempts: 3,
    ca: o.ca,
    logger: o.logger,
    signal: o.signal,
  })
  const text = res.body.toString('utf8')
  if (res.status !== 200) throw refusal(res.status, what, o, text)
  let token: unknown
  try {
    token = (JSON.parse(text) as { token?: unknown }).token
  } catch {
    token = undefined
  }
  if (typeof token !== 'string') throw new MaaError('MAA_POLICY_ANSWER', `${what} at ${o.endpoint} answered HTTP 200 without a token`)
  return (await verifyMaaToken(token, { endpoint: o.endpoint, keys: o.keys, ca: o.ca, signal: o.signal, logger: o.logger })).claims
}

const subjectOf = (c: X509Certificate) => c.subject.replace(/\n/g, ', ')

function certificateOf(jwk: unknown, what: string): X509Certificate {
  try {
    return new X509Certificate(Buffer.from(String((jwk as { x5c?: unknown[] }).x5c?.[0]), 'base64'))
  } catch {
    throw new MaaError('MAA_POLICY_ANSWER', `${what} is not a JWK with an x5c certificate`)
  }
}

export interface CurrentPolicy {
  text: string
  /** Who signed it, when it was set signed. */
  signer?: X509Certificate
}

/** GET /policies/{type}: the policy text in force (docs/attestation-policy.md#rest-api). */
export async function getPolicy(type: string, o: AdminOptions): Promise<CurrentPolicy> {
  const claims = await call(o, `reading the ${type} attestation policy`, 'GET', `/policies/${type}`)
  const jws = claims['x-ms-policy']
  let encoded: unknown
  try {
    encoded =
      typeof jws === 'string' ? (JSON.parse(Buffer.from(jws.split('.')[1] ?? '', 'base64url').toString('utf8')) as { AttestationPolicy?: unknown }).AttestationPolicy : undefined
  } catch {
    encoded = undefined
  }
  if (typeof encoded !== 'string') throw new MaaError('MAA_POLICY_ANSWER', `the ${type} policy answer has no x-ms-policy JWS with an AttestationPolicy`)
  const signer = claims['x-ms-policy-signer']
  return { text: Buffer.from(encoded, 'base64url').toString('utf8'), signer: signer ? certificateOf(signer, 'x-ms-policy-signer') : undefined }
}

export interface PolicyChange {
  result: string
  /** x-ms-policy-token-hash, checked against the JWS that was sent. */
  tokenHash: string
}

/** The answer to a set or reset: the expected result, and the hash of exactly the JWS that was sent. */
function checkChange(claims: Record<string, unknown>, jws: string, expected: 'Updated' | 'Removed', what: string, required: boolean): PolicyChange {
  const result = claims['x-ms-policy-result']
  if (result !== expected) throw new MaaError('MAA_POLICY_ANSWER', `${what}: MAA answered x-ms-policy-result ${JSON.stringify(result ?? null)}, not ${expected}`)
  const hash = claims['x-ms-policy-token-hash']
  const sent = policyTokenHash(jws)
  if (hash === undefined && !required) return { result: expected, tokenHash: sent }
  if (hash !== sent)
    throw new MaaError(
      'MAA_POLICY_HASH',
      `${what}: MAA answered x-ms-policy-token-hash ${JSON.stringify(hash ?? null)}, but the JWS sent hashes to ${sent}: the policy in force is not the one sent`,
    )
  return { result: expected, tokenHash: sent }
}

/** PUT /policies/{type}: a policy JWS (signed when a signer is given), its token hash verified. */
export async function setPolicy(type: string, text: string, o: AdminOptions & { signer?: PolicySigner }): Promise<PolicyChange> {
  const jws = await managementJws(storedPolicy(text), o.signer)
  const claims = await call(o, `setting the ${type} attestation policy`, 'PUT', `/policies/${type}`, { type: 'text/plain', text: jws })
  const change = checkChange(claims, jws, 'Updated', `setting the ${type} policy`, true)
  ;(o.logger ?? silentLogger).info({ type, tokenHash: change.tokenHash, signed: Boolean(o.signer) }, 'attestation policy set; token hash verified')
  return change
}

/** POST /policies/{type}:reset: back to the instance's default policy. */
export async function resetPolicy(type: string, o: AdminOptions & { signer?: PolicySigner }): Promise<PolicyChange> {
  const jws = await managementJws(undefined, o.signer)
  const claims = await call(o, `resetting the ${type} attestation policy`, 'POST', `/policies/${type}:reset`, { type: 'text/plain', text: jws })
  return checkChange(claims, jws, 'Removed', `resetting the ${type} policy`, false)
}

/** GET /certificates: the policy-management certificates (none on an AAD-mode instance). */
export async function listSigners(o: AdminOptions): Promise<X509Certificate[]> {
  const claims = await call(o, 'listing the policy-management certificates', 'GET', '/certificates')
  const keys = (claims['x-ms-policy-certificates'] as { keys?: unknown } | undefined)?.keys
  if (!Array.isArray(keys)) throw new MaaError('MAA_POLICY_ANSWER', 'the certificates answer has no x-ms-policy-certificates.keys')
  return keys.map((k, i) => certificateOf(k, `x-ms-policy-certificates.keys[${i}]`))
}

/** SHA-1 of the certificate, upper-case hex: how MAA names a policy-management certificate. */
export const signerThumbprint = (c: X509Certificate) => createHash('sha1').update(c.raw).digest('hex').toUpperCase()

/** POST /certificates:add or :remove, signed by a current policy-management key. */
export async function changeSigner(change: 'add' | 'remove', certificate: X509Certificate, o: AdminOptions & { signer: PolicySigner }): Promise<string> {
  const jws = await managementJws({ policyCertificate: certificateJwk(certificate) }, o.signer)
  const what = `${change === 'add' ? 'adding' : 'removing'} the policy-management certificate ${subjectOf(certificate)}`
  const claims = await call(o, what, 'POST', `/certificates:${change}`, { type: 'application/json', text: JSON.stringify(jws) })
  const expected = change === 'add' ? 'IsPresent' : 'IsAbsent'
  if (claims['x-ms-policycertificates-result'] !== expected || String(claims['x-ms-certificate-thumbprint']).toUpperCase() !== signerThumbprint(certificate))
    throw new MaaError(
      'MAA_POLICY_ANSWER',
      `${what}: MAA answered ${JSON.stringify(claims['x-ms-policycertificates-result'] ?? null)} for ${JSON.stringify(claims['x-ms-certificate-thumbprint'] ?? null)}, expected ${expected} for ${signerThumbprint(certificate)}`,
    )
  return signerThumbprint(certificate)
}
