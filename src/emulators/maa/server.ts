import { generateKeyPair, randomUUID, X509Certificate, type KeyObject } from 'node:crypto'
import { SignJWT, exportJWK, calculateJwkThumbprint, type JWK } from 'jose'
import { silentLogger, type Logger } from '../../log/logger.js'
import { verifyReport, type VerifiedReport } from '../../attestation/verify.js'
import { maaReportData } from '../../attestation/report-data.js'
import { startTlsServer, sendJson, type TlsServer } from '../tls-server.js'
import type { ServerPki } from '../pki.js'
import { snpClaims } from './claims.js'
import type { TokenAuthority } from '../token-authority.js'
import { MaaPolicyStore, policyHash, type PolicyMode } from './policy-store.js'
import { certificateJwk } from '../../maa/policy-jws.js'
import { routePolicyAdmin } from './policy-routes.js'
import { evaluatePolicy, incomingClaims } from './policy-engine.js'
import { attestGuest } from './azure-guest.js'

export interface MaaEmulatorOptions {
  port?: number
  pki?: ServerPki
  /** When given, the report's chain must end at one of these ARKs (as MAA trusts only AMD's). */
  trustedArks?: X509Certificate[]
  /** When given, HOST_DATA must equal it (the policy digest the deployment expects). */
  expectedHostData?: Buffer
  /** When given, a confidential VM's attestation key certificate must be issued by one of these (Azure's vTPM CA). */
  trustedAkCas?: X509Certificate[]
  /** `x-ms-compliance-status` when endorsements are present. */
  complianceStatus?: string
  tokenLifetimeSeconds?: number
  logger?: Logger
  /** Checks bearer tokens of the management plane (policies, certificates); without it, management requests are refused. */
  authority?: TokenAuthority
  /** AAD (default): unsigned policies allowed. Isolated: every policy change signed by one of `policySigners`. */
  policyMode?: PolicyMode
  /** The policy-management certificates (PEM) an Isolated instance starts with. */
  policySigners?: string[]
}

export interface MaaEmulator extends TlsServer {
  /** The token signing keys, as GET /certs publishes them. */
  jwks(): { keys: JWK[] }
  /** Fault injection: answer the next `n` attest requests with `status`. */
  failNext(n: number, status: number): void
  readonly attestCount: number
  /** The User-Agent of the last attest request. */
  readonly lastUserAgent: string | undefined
  /** The attestation policies and policy-management certificates. */
  readonly policies: MaaPolicyStore
  /** The host:port clients address it by: its own, or what serveAs() named. */
  readonly publicEndpoint: string
  /**
   * Answer as the instance at `endpoint` (a proxy in front of it): tokens' iss and jku and the
   * OpenID configuration name that address, as a real instance names its one host.
   */
  serveAs(endpoint: string): void
}

const decodeUrl64 = (s: string) => Buffer.from(s, 'base64url')

function bad(message: string): { status: number; body: unknown } {
  return { status: 400, body: { error: { code: 'InvalidParameter', message } } }
}

interface AttestRequest {
  bundle: { SnpReport: string; VcekCertChain: string; Endorsements?: string }
  runtime: Buffer
  runtimeJson: unknown
  nonce: unknown
}

/** The attest request's members, each decoded (the report bundle and runtime data are base64url JSON), or the 400 to answer. */
function readAttestRequest(body: Buffer): AttestRequest | { status: number; body: unknown } {
  let req: { report?: string; runtimeData?: { data?: string; dataType?: string }; nonce?: unknown }
  try {
    req = JSON.parse(body.toString('utf8')) as typeof req
  } catch {
    return bad('the request body is not JSON')
  }
  if (typeof req.report !== 'string' || typeof req.runtimeData?.data !== 'string') return bad('report and runtimeData.data are required')
  let bundle: { SnpReport?: string; VcekCertChain?: string; Endorsements?: string }
  try {
    bundle = JSON.parse(decodeUrl64(req.report).toString('utf8')) as typeof bundle
  } catch {
    return bad('report is not base64url of the JSON report bundle')
  }
  if (!bundle.SnpReport || !bundle.VcekCertChain) return bad('the report bundle needs SnpReport and VcekCertChain')
  const runtime = decodeUrl64(req.runtimeData.data)
  try {
    return { bundle: { ...bundle, SnpReport: bundle.SnpReport, VcekCertChain: bundle.VcekCertChain }, runtime, runtimeJson: JSON.parse(runtime.toString('utf8')), nonce: req.nonce }
  } catch {
    return bad('runtimeData.data is not JSON (dataType JSON)')
  }
}

/** Signs claims as the instance signs every token: RS256, its kid and jku, with iss, iat, nbf, exp and jti. */
function tokenSigner(key: KeyObject, kid: string, lifetimeSeconds: number, url: () => string) {
  return (claims: Record<string, unknown>): Promise<string> => {
    const now = Math.floor(Date.now() / 1000)
    return new SignJWT(claims)
      .setProtectedHeader({ alg: 'RS256', kid, typ: 'JWT', jku: `${url()}/certs` })
      .setIssuer(url())
      .setIssuedAt(now)
      .setNotBefore(now)
      .setExpirationTime(now + lifetimeSeconds)
      .setJti(randomUUID())
      .sign(key)
  }
}

/** The SevSnpVm attest call: the report verified, the attestation policy applied, the token's claims. */
async function attestClaims(o: MaaEmulatorOptions, policies: MaaPolicyStore, body: Buffer): Promise<{ status: number; body: unknown } | { claims: Record<string, unknown> }> {
  const r = readAttestRequest(body)
  if ('status' in r) return r
  let verified: VerifiedReport
  try {
    verified = verifyReport(decodeUrl64(r.bundle.SnpReport), {
      chain: decodeUrl64(r.bundle.VcekCertChain).toString('utf8'),
      trustedArks: o.trustedArks,
      reportData: maaReportData(r.runtime),
      hostData: o.expectedHostData,
    })
  } catch (err) {
    return bad(`SNP report verification failed: ${(err as Error).message}`)
  }
  const evidence = {
    ...snpClaims(verified.report),
    'x-ms-compliance-status': r.bundle.Endorsements ? (o.complianceStatus ?? 'azure-compliant-uvm') : 'not-endorsed',
  }
  const policy = policies.policy('SevSnpVm')
  const decision = evaluatePolicy(policy.parsed, incomingClaims(evidence))
  if (!decision.permitted) return { status: 400, body: { error: { code: 'PolicyEvaluationError', message: `Attestation failed: ${decision.reason}` } } }
  return {
    claims: {
      ...evidence,
      ...decision.issued,
      'x-ms-runtime': r.runtimeJson,
      'x-ms-policy-hash': policyHash(policy.text),
      ...(policy.signer ? { 'x-ms-policy-signer': certificateJwk(policy.signer) } : {}),
      'x-ms-ver': '1.0',
      ...(r.nonce !== undefined ? { nonce: String(r.nonce) } : {}),
    },
  }
}

/**
 * Microsoft Azure Attestation for SEV-SNP, on loopback over TLS: checks the report's signature
 * against the VCEK chain it is sent, report_data against the runtime data, host_data when
 * configured, applies the SevSnpVm attestation policy, and issues an RS256 token with MAA's
 * claims; keys at /certs; the policy management plane of docs/attestation-policy.md.
 */
export async function startMaaEmulator(o: MaaEmulatorOptions = {}): Promise<MaaEmulator> {
  const logger = o.logger ?? silentLogger
  const { privateKey, publicKey } = await new Promise<{ privateKey: KeyObject; publicKey: KeyObject }>((resolve, reject) =>
    generateKeyPair('rsa', { modulusLength: 2048 }, (err, pub, priv) => (err ? reject(err) : resolve({ privateKey: priv, publicKey: pub }))),
  )
  const jwk = await exportJWK(publicKey)
  const kid = await calculateJwkThumbprint(jwk)
  const published: JWK = { ...jwk, kid, alg: 'RS256', use: 'sig' }
  const policies = new MaaPolicyStore(
    o.policyMode ?? 'AAD',
    (o.policySigners ?? []).map((p) => new X509Certificate(p)),
  )
  let failures = { n: 0, status: 503 }
  let attestCount = 0
  let lastUserAgent: string | undefined
  let server: TlsServer | undefined
  let publicUrl: string | undefined
  const base = () => publicUrl ?? server!.url
  const sign = tokenSigner(privateKey, kid, o.tokenLifetimeSeconds ?? 8 * 3600, base)
  // Guest attestation tokens (azure-guest.ts) carry MAA's common claims too; no policy is applied to them here.
  const signGuest = (claims: Record<string, unknown>) => sign({ 'x-ms-policy-hash': policyHash(policies.policy('AzureGuest').text), 'x-ms-ver': '1.0', ...claims })

  server = await startTlsServer(
    async (req, body, res) => {
      const url = new URL(req.url ?? '/', 'https://x')
      if (req.method === 'GET' && url.pathname === '/certs') return sendJson(res, 200, { keys: [published] })
      if (req.method === 'GET' && url.pathname === '/.well-known/openid-configuration') {
        return sendJson(res, 200, { issuer: base(), jwks_uri: `${base()}/certs`, id_token_signing_alg_values_supported: ['RS256'] })
      }
      if (await routePolicyAdmin({ store: policies, authority: o.authority, sign, logger }, req, body, res)) return
      // Confidential VMs attest through the guest protocol (azure-guest.ts).
      const guest = req.method === 'POST' && /^\/attest\/AzureGuest$/i.test(url.pathname)
      if (req.method === 'POST' && (guest || /^\/attest\/SevSnpVm$/i.test(url.pathname))) {
        attestCount++
        lastUserAgent = req.headers['user-agent']
        if (failures.n > 0) {
          failures.n--
          return sendJson(res, failures.status, { error: { code: 'ServiceUnavailable', message: 'injected failure' } })
        }
        if (!url.searchParams.get('api-version'))
          return sendJson(res, 400, { error: { code: 'MissingApiVersionParameter', message: 'The api-version query parameter is required' } })
        if (guest) {
          const answer = await attestGuest(body, { trustedArks: o.trustedArks, trustedAkCas: o.trustedAkCas, sign: signGuest })
          if (answer.status !== 200) logger.warn({ answer: answer.body }, 'MAA emulator: attestation refused')
          return sendJson(res, answer.status, answer.body)
        }
        const answer = await attestClaims(o, policies, body)
        if ('status' in answer) {
          logger.warn({ answer: answer.body }, 'MAA emulator: attestation refused')
          return sendJson(res, answer.status, answer.body)
        }
        logger.info({ hostData: answer.claims['x-ms-sevsnpvm-hostdata'] }, 'MAA emulator: token issued')
        return sendJson(res, 200, { token: await sign(answer.claims) })
      }
      sendJson(res, 404, { error: { code: 'NotFound', message: `${req.method} ${url.pathname}` } })
    },
    { port: o.port, pki: o.pki, name: 'MAA' },
  )

  const tls = server
  return {
    ...tls,
    policies,
    get publicEndpoint() {
      return base().replace(/^https:\/\//, '')
    },
    serveAs: (endpoint: string) => {
      publicUrl = `https://${endpoint}`
    },
    jwks: () => ({ keys: [published] }),
    failNext: (n: number, status: number) => {
      failures = { n, status }
    },
    get attestCount() {
      return attestCount
    },
    get lastUserAgent() {
      return lastUserAgent
    },
  }
}
