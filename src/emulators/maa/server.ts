import { createHash, generateKeyPair, randomUUID, type KeyObject, type X509Certificate } from 'node:crypto'
import { SignJWT, exportJWK, calculateJwkThumbprint, type JWK } from 'jose'
import { silentLogger, type Logger } from '../../log/logger.js'
import { verifyReport, type VerifiedReport } from '../../attestation/verify.js'
import { maaReportData } from '../../attestation/report-data.js'
import { startTlsServer, sendJson, type TlsServer } from '../tls-server.js'
import type { ServerPki } from '../pki.js'
import { snpClaims } from './claims.js'
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
}

export interface MaaEmulator extends TlsServer {
  /** The token signing keys, as GET /certs publishes them. */
  jwks(): { keys: JWK[] }
  /** Fault injection: answer the next `n` attest requests with `status`. */
  failNext(n: number, status: number): void
  readonly attestCount: number
  /** The User-Agent of the last attest request. */
  readonly lastUserAgent: string | undefined
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

/** Signs guest attestation tokens (azure-guest.ts) as attest() signs its own: RS256, the key at /certs, MAA's common claims. */
function guestTokenSigner(privateKey: KeyObject, kid: string, lifetimeSeconds: number | undefined, issuer: () => string) {
  return async (claims: Record<string, unknown>): Promise<string> => {
    const now = Math.floor(Date.now() / 1000)
    return new SignJWT({ 'x-ms-policy-hash': createHash('sha256').update('encfs MAA emulator default policy').digest('base64url'), 'x-ms-ver': '1.0', ...claims })
      .setProtectedHeader({ alg: 'RS256', kid, typ: 'JWT', jku: `${issuer()}/certs` })
      .setIssuer(issuer())
      .setIssuedAt(now)
      .setNotBefore(now)
      .setExpirationTime(now + (lifetimeSeconds ?? 8 * 3600))
      .setJti(randomUUID())
      .sign(privateKey)
  }
}

/**
 * Microsoft Azure Attestation for SEV-SNP, on loopback over TLS: checks the report's signature
 * against the VCEK chain it is sent, report_data against the runtime data, host_data when
 * configured, and issues an RS256 token with MAA's claims; keys at /certs.
 */
export async function startMaaEmulator(o: MaaEmulatorOptions = {}): Promise<MaaEmulator> {
  const logger = o.logger ?? silentLogger
  const { privateKey, publicKey } = await new Promise<{ privateKey: KeyObject; publicKey: KeyObject }>((resolve, reject) =>
    generateKeyPair('rsa', { modulusLength: 2048 }, (err, pub, priv) => (err ? reject(err) : resolve({ privateKey: priv, publicKey: pub }))),
  )
  const jwk = await exportJWK(publicKey)
  const kid = await calculateJwkThumbprint(jwk)
  const published: JWK = { ...jwk, kid, alg: 'RS256', use: 'sig' }
  let failures = { n: 0, status: 503 }
  let attestCount = 0
  let lastUserAgent: string | undefined
  let server: TlsServer | undefined

  const signToken = guestTokenSigner(privateKey, kid, o.tokenLifetimeSeconds, () => server!.url)

  const attest = async (body: Buffer): Promise<{ status: number; body: unknown }> => {
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
    const now = Math.floor(Date.now() / 1000)
    const token = await new SignJWT({
      ...snpClaims(verified.report),
      'x-ms-runtime': r.runtimeJson,
      'x-ms-compliance-status': r.bundle.Endorsements ? (o.complianceStatus ?? 'azure-compliant-uvm') : 'not-endorsed',
      'x-ms-policy-hash': createHash('sha256').update('encfs MAA emulator default policy').digest('base64url'),
      'x-ms-ver': '1.0',
      ...(r.nonce !== undefined ? { nonce: String(r.nonce) } : {}),
    })
      .setProtectedHeader({ alg: 'RS256', kid, typ: 'JWT', jku: `${server!.url}/certs` })
      .setIssuer(server!.url)
      .setIssuedAt(now)
      .setNotBefore(now)
      .setExpirationTime(now + (o.tokenLifetimeSeconds ?? 8 * 3600))
      .setJti(randomUUID())
      .sign(privateKey)
    logger.info({ hostData: verified.report.hostData }, 'MAA emulator: token issued')
    return { status: 200, body: { token } }
  }

  server = await startTlsServer(
    async (req, body, res) => {
      const url = new URL(req.url ?? '/', 'https://x')
      if (req.method === 'GET' && url.pathname === '/certs') return sendJson(res, 200, { keys: [published] })
      if (req.method === 'GET' && url.pathname === '/.well-known/openid-configuration') {
        return sendJson(res, 200, { issuer: server!.url, jwks_uri: `${server!.url}/certs`, id_token_signing_alg_values_supported: ['RS256'] })
      }
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
        const answer = guest ? await attestGuest(body, { trustedArks: o.trustedArks, trustedAkCas: o.trustedAkCas, sign: signToken }) : await attest(body)
        if (answer.status !== 200) logger.warn({ answer: answer.body }, 'MAA emulator: attestation refused')
        return sendJson(res, answer.status, answer.body)
      }
      sendJson(res, 404, { error: { code: 'NotFound', message: `${req.method} ${url.pathname}` } })
    },
    { port: o.port, pki: o.pki, name: 'MAA' },
  )

  const tls = server
  return {
    ...tls,
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
