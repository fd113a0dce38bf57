import { createPrivateKey, createPublicKey, randomBytes, X509Certificate, type JsonWebKey, type KeyObject } from 'node:crypto'
import { CompactSign, decodeJwt, type JWK } from 'jose'
import { silentLogger, type Logger } from '../../log/logger.js'
import { MaaSigningKeys } from '../../maa/signing-keys.js'
import { verifyMaaToken } from '../../maa/token-verify.js'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { startTlsServer, sendJson, type TlsServer } from '../tls-server.js'
import type { TokenAuthority } from '../token-authority.js'
import { evaluateReleasePolicy, releasePolicyProblems } from '../../skr/release-policy.js'
import { refusalSummary } from '../../skr/release-explain.js'
import { decodeReleasePolicy } from '../../skr/key-policy.js'
import { wrapForRelease } from './wrap.js'

interface StoredKey {
  name: string
  version: string
  kty: 'oct-HSM' | 'RSA-HSM' | 'oct' | 'RSA'
  keyOps: string[]
  /** oct: the key bytes; RSA: PKCS#8 DER of the private key (what a release hands out). */
  material: Buffer
  policy: unknown
  policyData: string
  exportable: boolean
}

export interface AkvEmulatorOptions {
  port?: number
  /** Managed HSM audience (https://managedhsm.azure.net) instead of Key Vault's. */
  managedHsm?: boolean
  authority: TokenAuthority
  /** CAs to trust when fetching an MAA's signing keys from `{iss}/certs`. */
  maaCas?: string[]
  logger?: Logger
}

/** What an import request carried, as the service saw it (for tests of importers). */
export interface ImportRecord {
  name: string
  /** The api-version query parameter. */
  apiVersion: string
  /** The request body as sent (with the key material: tests only). */
  body: string
}

export interface AkvEmulator extends TlsServer {
  readonly audience: string
  readonly releases: number
  readonly imports: readonly ImportRecord[]
}

/** A refusal in the service's shape; a class, so that a request body can never pass for one. */
class AzureError {
  readonly body: unknown
  constructor(
    readonly status: number,
    code: string,
    message: string,
    inner?: string,
  ) {
    this.body = { error: { code, message, ...(inner ? { innererror: { code: inner } } : {}) } }
  }
}

const azureError = (status: number, code: string, message: string, inner?: string) => new AzureError(status, code, message, inner)

const b64url = (b: Buffer | string) => Buffer.from(b).toString('base64url')

type Answer = { status: number; body: unknown }
type ImportRequest = { key?: JWK & { key_ops?: string[] }; hsm?: boolean; release_policy?: { data?: string }; attributes?: { exportable?: boolean } }

/** An imported JWK's material as a release hands it out: oct bytes, or RSA as PKCS#8 DER. */
function keyMaterial(jwk: JWK): Buffer | AzureError {
  if (jwk.kty === 'oct-HSM' || jwk.kty === 'oct') {
    if (!jwk.k) return azureError(400, 'BadParameter', 'key.k is required for oct keys')
    return Buffer.from(jwk.k, 'base64url')
  }
  if (jwk.kty === 'RSA-HSM' || jwk.kty === 'RSA') {
    try {
      return createPrivateKey({ key: { ...jwk, kty: 'RSA' } as JsonWebKey, format: 'jwk' }).export({ type: 'pkcs8', format: 'der' })
    } catch (err) {
      return azureError(400, 'BadParameter', `key is not an RSA private key: ${(err as Error).message}`)
    }
  }
  return azureError(400, 'BadParameter', `kty ${jwk.kty} is not supported by this emulator`)
}

/** release_policy.data, decoded as the service takes it (either base64 alphabet). */
function releasePolicyOf(policyData: string): unknown {
  try {
    return decodeReleasePolicy(policyData)
  } catch {
    return azureError(400, 'BadParameter', 'release_policy.data is not base64 of a JSON policy')
  }
}

function parseJson<T>(body: Buffer): T | AzureError {
  try {
    return JSON.parse(body.toString()) as T
  } catch {
    return azureError(400, 'BadParameter', 'The request body is not valid JSON')
  }
}

/** The vault's keys and what happened to them: import, release (with the MAA token's checks), and the router. */
class AkvService {
  private readonly keys = new Map<string, StoredKey[]>()
  /** Signing keys per MAA instance whose tokens were presented. */
  private readonly maaKeys = new Map<string, MaaSigningKeys>()
  readonly imports: ImportRecord[] = []
  releases = 0
  url = ''
  signer?: { key: KeyObject; x5c: string[] }

  constructor(
    private readonly o: AkvEmulatorOptions,
    readonly audience: string,
    private readonly logger: Logger,
  ) {}

  private async authorize(auth: string | undefined): Promise<AzureError | undefined> {
    const token = /^Bearer (.+)$/i.exec(auth ?? '')?.[1]
    if (!token) return azureError(401, 'Unauthorized', 'AKV10000: Request is missing a Bearer or PoP token.')
    const checked = await this.o.authority.check(token, this.audience)
    if (!checked.ok) return azureError(401, 'Unauthorized', `AKV10022: Invalid audience or token: ${checked.reason}`)
    return undefined
  }

  async importKey(name: string, body: Buffer): Promise<Answer> {
    const req = parseJson<ImportRequest>(body)
    if (req instanceof AzureError) return req
    const jwk = req.key
    if (!jwk?.kty) return azureError(400, 'BadParameter', 'key.kty is required')
    const material = keyMaterial(jwk)
    if (material instanceof AzureError) return material
    const policyData = req.release_policy?.data ?? ''
    const policy = releasePolicyOf(policyData)
    if (policy instanceof AzureError) return policy
    const problems = releasePolicyProblems(policy)
    if (problems.length) return azureError(400, 'BadParameter', `release_policy is not a valid key release policy: ${problems.join('; ')}`)
    if (req.attributes?.exportable !== true) return azureError(400, 'BadParameter', 'a key with a release policy must be exportable')
    const version = randomBytes(16).toString('hex')
    // As the service does: a key imported with hsm:true is an HSM key whatever kty said.
    const kty = (req.hsm && !jwk.kty.endsWith('-HSM') ? `${jwk.kty}-HSM` : jwk.kty) as StoredKey['kty']
    const stored: StoredKey = { name, version, kty, keyOps: jwk.key_ops ?? [], material, policy, policyData, exportable: true }
    this.keys.set(name, [...(this.keys.get(name) ?? []), stored])
    this.logger.info({ name, version, kty: stored.kty }, 'AKV emulator: key imported')
    return {
      status: 200,
      body: {
        key: { kid: `${this.url}/keys/${name}/${version}`, kty: stored.kty, key_ops: stored.keyOps },
        attributes: { enabled: true, exportable: true },
        release_policy: { contentType: 'application/json; charset=utf-8', data: policyData },
      },
    }
  }

  /** GET /keys/{name}[/{version}]: the key's public description and its release policy, as Key Vault answers it (no key material). */
  getKey(name: string, version: string | undefined): Answer {
    const stored = version ? this.keys.get(name)?.find((k) => k.version === version) : this.keys.get(name)?.at(-1)
    if (!stored) return azureError(404, 'KeyNotFound', `A key with (name/id) ${name}${version ? `/${version}` : ''} was not found in this key vault.`)
    return {
      status: 200,
      body: {
        key: { kid: `${this.url}/keys/${name}/${stored.version}`, kty: stored.kty, key_ops: stored.keyOps },
        attributes: { enabled: true, exportable: stored.exportable },
        release_policy: { contentType: 'application/json; charset=utf-8', data: stored.policyData, immutable: false },
      },
    }
  }

  /** The MAA token's claims once it verifies with its issuer's published keys (as Key Vault checks it: signature, issuer, validity). */
  private async verifiedClaims(target: string): Promise<{ issuer: string; claims: Record<string, unknown> } | AzureError> {
    try {
      const iss = decodeJwt(target).iss ?? ''
      if (!/^https:\/\/[^/]+\/?$/i.test(iss)) throw new Error(`the token's issuer ${JSON.stringify(iss)} is not an https instance URL`)
      const endpoint = iss.replace(/^https:\/\//i, '').replace(/\/+$/, '')
      let keys = this.maaKeys.get(endpoint)
      if (!keys) {
        keys = new MaaSigningKeys(endpoint)
        this.maaKeys.set(endpoint, keys)
      }
      // One fetch of MAA's keys serves every release waiting on it: give it the patience remotefs has at start-up.
      const { issuer, claims } = await verifyMaaToken(target, { endpoint, keys, ca: this.o.maaCas, attempts: 8 })
      return { issuer, claims }
    } catch (err) {
      return azureError(403, 'Forbidden', `Target environment attestation statement cannot be verified: ${(err as Error).message}`, 'AccessDenied')
    }
  }

  async release(name: string, version: string | undefined, body: Buffer): Promise<Answer> {
    const stored = version ? this.keys.get(name)?.find((k) => k.version === version) : this.keys.get(name)?.at(-1)
    if (!stored) return azureError(404, 'KeyNotFound', `A key with (name/id) ${name}${version ? `/${version}` : ''} was not found in this key vault.`)
    const req = parseJson<{ target?: string; enc?: string }>(body)
    if (req instanceof AzureError) return req
    if (!req.target) return azureError(400, 'BadParameter', 'target (the attestation token) is required')
    const verified = await this.verifiedClaims(req.target)
    if (verified instanceof AzureError) return verified
    const refusal = refusalSummary(evaluateReleasePolicy(stored.policy, verified))
    if (refusal)
      return azureError(403, 'Forbidden', `Target environment attestation statement cannot be verified. The key release policy is not satisfied: ${refusal}`, 'AccessDenied')
    const runtimeJwk = ((verified.claims['x-ms-runtime'] as { keys?: JsonWebKey[] } | undefined)?.keys ?? [])[0]
    if (!runtimeJwk) return azureError(400, 'BadParameter', 'the attestation token has no x-ms-runtime.keys[0] to wrap the key to')
    const enc = req.enc ?? 'CKM_RSA_AES_KEY_WRAP'
    let blob: Buffer
    try {
      blob = wrapForRelease(stored.material, enc, createPublicKey({ key: runtimeJwk, format: 'jwk' }))
    } catch (err) {
      return azureError(400, 'BadParameter', `cannot wrap to the runtime key: ${(err as Error).message}`)
    }
    const jws = await this.signRelease(stored, enc, blob)
    this.releases++
    this.logger.info({ name, version: stored.version, enc }, 'AKV emulator: key released')
    return { status: 200, body: { value: jws } }
  }

  /** The release answer: a JWS signed with this server's certificate, the wrapped key in key_hsm. */
  private async signRelease(stored: StoredKey, enc: string, blob: Buffer): Promise<string> {
    const kid = `${this.url}/keys/${stored.name}/${stored.version}`
    const keyHsm = b64url(JSON.stringify({ schema_version: '1.0', header: { kid, alg: 'dir', enc }, ciphertext: b64url(blob) }))
    const payload = {
      request: { 'api-version': '7.4', enc, kid },
      response: {
        key: {
          attributes: { enabled: true, exportable: true },
          key: { kid, kty: stored.kty, key_ops: stored.keyOps, key_hsm: keyHsm },
          release_policy: { contentType: 'application/json; charset=utf-8', data: stored.policyData },
        },
      },
    }
    return new CompactSign(Buffer.from(JSON.stringify(payload))).setProtectedHeader({ alg: 'RS256', x5c: this.signer!.x5c }).sign(this.signer!.key)
  }

  /** PUT /keys/{name} imports, GET /keys/{name}[/{version}] describes, POST /keys/{name}[/{version}]/release releases; every request needs api-version and a bearer token. */
  async route(req: IncomingMessage, body: Buffer, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'https://x')
    if (url.searchParams.get('api-version') === null) return sendJson(res, 400, { error: { code: 'BadParameter', message: 'api-version is required' } })
    const m = /^\/keys\/([A-Za-z0-9-]+)(?:\/([0-9a-f]+))?(\/release)?$/.exec(url.pathname)
    if (!m) return sendJson(res, 404, { error: { code: 'NotFound', message: `${req.method} ${url.pathname}` } })
    const denied = await this.authorize(req.headers.authorization)
    if (denied) return sendJson(res, denied.status, denied.body)
    const [, name, version, isRelease] = m
    if (req.method === 'PUT' && !isRelease) this.imports.push({ name: name!, apiVersion: url.searchParams.get('api-version')!, body: body.toString() })
    const answer =
      req.method === 'PUT' && !isRelease
        ? await this.importKey(name!, body)
        : req.method === 'POST' && isRelease
          ? await this.release(name!, version, body)
          : req.method === 'GET' && !isRelease
            ? this.getKey(name!, version)
            : azureError(405, 'MethodNotAllowed', `${req.method} is not supported here`)
    if (answer.status >= 400) this.logger.warn({ status: answer.status, error: answer.body }, 'AKV emulator: request refused')
    sendJson(res, answer.status, answer.body)
  }
}

/**
 * Azure Key Vault / Managed HSM keys over TLS on loopback: import with a release policy (PUT),
 * then secure key release (POST .../release): bearer token check, MAA token verification with
 * the MAA's published keys, policy evaluation, wrapping to the token's runtime key, and an
 * answer signed as a JWS by this server's own TLS certificate (x5c chained to its CA).
 */
export async function startAkvEmulator(o: AkvEmulatorOptions): Promise<AkvEmulator> {
  const service = new AkvService(o, o.managedHsm ? 'https://managedhsm.azure.net' : 'https://vault.azure.net', o.logger ?? silentLogger)
  const server = await startTlsServer((req, body, res) => service.route(req, body, res), { port: o.port, name: o.managedHsm ? 'Managed HSM' : 'Key Vault' })
  service.url = server.url
  // Key Vault signs release answers with a certificate for its own host name; so do we.
  service.signer = {
    key: createPrivateKey(server.pki.keyPem),
    x5c: [new X509Certificate(server.pki.certPem).raw.toString('base64'), new X509Certificate(server.pki.caPem).raw.toString('base64')],
  }
  return {
    ...server,
    audience: service.audience,
    imports: service.imports,
    get releases() {
      return service.releases
    },
  }
}
