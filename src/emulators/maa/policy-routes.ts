import type { IncomingMessage, ServerResponse } from 'node:http'
import type { X509Certificate } from 'node:crypto'
import type { Logger } from '../../log/logger.js'
import { sendJson } from '../tls-server.js'
import type { TokenAuthority } from '../token-authority.js'
import { PolicyRefusal, type MaaPolicyStore } from './policy-store.js'
import { signerThumbprint } from '../../maa/policy-admin.js'
import { certificateJwk, policyTokenHash } from '../../maa/policy-jws.js'

/** The audience of the attestation management plane, as Azure's administration clients ask for it. */
export const ATTESTATION_AUDIENCE = 'https://attest.azure.net'

const ROUTE = /^\/(?:policies\/([A-Za-z]+)(:reset)?|certificates(:add|:remove)?)$/

export interface PolicyRoutes {
  store: MaaPolicyStore
  /** Checks the management plane's bearer tokens; without one every management request is refused. */
  authority?: TokenAuthority
  /** Signs the answer's claims as the instance signs its tokens. */
  sign(claims: Record<string, unknown>): Promise<string>
  logger: Logger
}

/** The body: the JWS as text/plain (policies), or as a JSON string (certificates), as the REST API takes them. */
function jwsOf(body: Buffer): string {
  const text = body.toString('utf8').trim()
  try {
    const v = JSON.parse(text) as unknown
    if (typeof v === 'string') return v
  } catch {
    /* plain text */
  }
  return text
}

const signerClaim = (signer?: X509Certificate) => (signer ? { 'x-ms-policy-signer': certificateJwk(signer) } : {})

async function answer(r: PolicyRoutes, method: string, m: RegExpExecArray, body: Buffer): Promise<Record<string, unknown> | PolicyRefusal> {
  const [, type, reset, change] = m
  if (type && method === 'GET' && !reset) {
    const p = r.store.policy(type)
    return { 'x-ms-policy': p.jws, ...signerClaim(p.signer) }
  }
  if (type && method === 'PUT' && !reset) {
    const stored = await r.store.setPolicy(type, jwsOf(body))
    if (stored instanceof PolicyRefusal) return stored
    r.logger.info({ type, signed: Boolean(stored.signer) }, 'MAA emulator: attestation policy set')
    return { 'x-ms-policy-result': 'Updated', 'x-ms-policy-token-hash': policyTokenHash(stored.jws), ...signerClaim(stored.signer), 'x-ms-policy': stored.jws }
  }
  if (type && method === 'POST' && reset) {
    const jws = jwsOf(body)
    const done = await r.store.resetPolicy(type, jws)
    if (done instanceof PolicyRefusal) return done
    r.logger.info({ type }, 'MAA emulator: attestation policy reset to the default')
    return { 'x-ms-policy-result': 'Removed', 'x-ms-policy-token-hash': policyTokenHash(jws.trim()), ...signerClaim(done.signer) }
  }
  if (!type && method === 'GET' && !change) return { 'x-ms-policy-certificates': { keys: r.store.signers.map(certificateJwk) } }
  if (!type && method === 'POST' && change) {
    const done = await r.store.changeSigners(jwsOf(body), change === ':add' ? 'add' : 'remove')
    if (done instanceof PolicyRefusal) return done
    return { 'x-ms-certificate-thumbprint': signerThumbprint(done.certificate), 'x-ms-policycertificates-result': done.present ? 'IsPresent' : 'IsAbsent' }
  }
  return new PolicyRefusal(405, 'MethodNotAllowed', `${method} is not supported on this path`)
}

/**
 * The attestation management plane (docs/attestation-policy.md#rest-api): GET/PUT
 * /policies/{type}, POST /policies/{type}:reset, GET /certificates, POST /certificates:add and
 * :remove, each with a bearer token for https://attest.azure.net and answered with a signed token.
 * Returns false for paths that are not its own.
 */
export async function routePolicyAdmin(r: PolicyRoutes, req: IncomingMessage, body: Buffer, res: ServerResponse): Promise<boolean> {
  const url = new URL(req.url ?? '/', 'https://x')
  const m = ROUTE.exec(url.pathname)
  if (!m) return false
  if (!url.searchParams.get('api-version')) {
    sendJson(res, 400, { error: { code: 'MissingApiVersionParameter', message: 'The api-version query parameter is required' } })
    return true
  }
  const bearer = /^Bearer (.+)$/i.exec(req.headers.authorization ?? '')?.[1]
  const checked = bearer && r.authority ? await r.authority.check(bearer, ATTESTATION_AUDIENCE) : undefined
  if (!checked?.ok) {
    const why = !r.authority ? 'this emulator was started without a token authority' : !bearer ? 'the request has no bearer token' : (checked as { reason: string }).reason
    sendJson(res, 401, { error: { code: 'Unauthorized', message: `the management plane needs a bearer token for ${ATTESTATION_AUDIENCE}: ${why}` } })
    return true
  }
  const result = await answer(r, req.method ?? 'GET', m, body)
  if (result instanceof PolicyRefusal) {
    r.logger.warn({ path: url.pathname, status: result.status, reason: result.message }, 'MAA emulator: management request refused')
    sendJson(res, result.status, { error: { code: result.code, message: result.message } })
  } else sendJson(res, 200, { token: await r.sign(result) })
  return true
}
