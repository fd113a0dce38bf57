import { randomBytes } from 'node:crypto'
import { silentLogger, type Logger } from '../log/logger.js'
import type { ReportProvider } from '../attestation/providers/provider.js'
import type { Collateral } from '../attestation/collateral.js'
import type { UvmInformation } from '../attestation/uvm-info.js'
import { maaReportData } from '../attestation/report-data.js'
import { evidence } from '../attestation/evidence.js'
import type { IdentityConfig } from '../identity/credential.js'
import { attestSevSnp } from '../maa/client.js'
import { request } from '../http/request.js'
import { SkrError } from './errors.js'
import { generateWrappingKey } from './wrapping-key.js'
import { verifyReleaseJws } from './release-jws.js'
import { defaultTrustedRoots } from './trust.js'
import { unwrapReleasedKey } from './unwrap.js'
import { interpretReleasedKey, type ReleasedKey } from './released-key.js'
import { vaultToken } from './vault-token.js'
import { trustedVault, type VaultHost } from './vault-hosts.js'
import { X509Certificate } from 'node:crypto'

export interface ReleaseOptions {
  /** MAA host (port allowed), no scheme. */
  maaEndpoint: string
  /** Key Vault / Managed HSM host (port allowed), no scheme; refused unless trusted (vault-hosts.ts). */
  akvEndpoint: string
  /** What named akvEndpoint, for the refusal: key.akv.endpoint, akv_endpoint, kms_endpoint... */
  akvField?: string
  /** The operator's vault hosts (default: env EncfsVaultHosts); the cloud vaults are trusted anyway. */
  vaultHosts?: readonly VaultHost[]
  /** Key name, or name/version. */
  kid: string
  /** A bearer token for the vault (config bearer_token, or the API caller's); else the identity's. */
  accessToken?: string
  identity?: IdentityConfig
  provider: ReportProvider
  collateral: Collateral
  uvm: UvmInformation
  /** Extra CAs (PEM) for MAA, the vault and the JWS chain, e.g. the emulators'. */
  ca?: string[]
  logger?: Logger
  signal?: AbortSignal
  /** Attempts for the MAA and the vault request each (429, 5xx and transport errors are retried; default 4 and 3). */
  attempts?: number
}

/**
 * Secure key release as the Go sidecar performs it (docs/key-release.md#release-flow): an ephemeral RSA key, an SNP
 * report binding it, an MAA token, the vault's release, the JWS verified, the key unwrapped.
 */
export async function releaseKey(o: ReleaseOptions): Promise<ReleasedKey> {
  const logger = o.logger ?? silentLogger
  const step = (name: string, extra: Record<string, unknown> = {}) => logger.info({ kid: o.kid, ...extra }, `key release: ${name}`)
  // Before anything: the MAA token and the vault token go to this host only if it is a vault.
  const vault = trustedVault(o.akvEndpoint, { field: o.akvField ?? 'the vault endpoint', hosts: o.vaultHosts })
  const wrapping = await generateWrappingKey()

  step('getting an SNP report', { provider: o.provider.name })
  const { report: raw, chain } = await evidence(o, maaReportData(wrapping.jwks), { logger, signal: o.signal })

  step('attesting with MAA', { maa: o.maaEndpoint })
  const token = await attestSevSnp(
    { report: raw, vcekCertChain: chain.chainPem, referenceInfo: o.uvm.referenceInfo, runtimeData: wrapping.jwks, nonce: randomBytes(8).readBigUInt64LE() },
    { endpoint: o.maaEndpoint, ca: o.ca, logger, signal: o.signal, attempts: o.attempts },
  )

  let bearer = o.accessToken
  if (!bearer) {
    step('getting a vault token from the identity')
    bearer = await vaultToken(vault, o.identity, { logger, signal: o.signal })
  }
  step('requesting the release', { akv: o.akvEndpoint })
  const url = `https://${o.akvEndpoint}/keys/${o.kid}/release?api-version=7.4`
  const res = await request(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${bearer}` },
    body: JSON.stringify({ target: token }),
    what: 'key release',
    attempts: o.attempts ?? 3,
    ca: o.ca,
    logger,
    signal: o.signal,
  })
  const text = res.body.toString('utf8')
  if (res.status < 200 || res.status > 207) {
    let detail = text.slice(0, 500)
    try {
      const e = (JSON.parse(text) as { error?: { code?: string; message?: string } }).error
      if (e) detail = `${e.code ?? ''}: ${e.message ?? ''}`
    } catch {
      /* not JSON: keep the text */
    }
    const hint =
      res.status === 401
        ? ' (the bearer token is missing, expired or for another resource)'
        : res.status === 403
          ? " (the attestation does not satisfy the key's release policy, or the identity lacks the release permission)"
          : res.status === 404
            ? ' (check key.kid and key.akv.endpoint)'
            : ''
    const unavailable = res.status === 408 || res.status === 429 || res.status >= 500
    throw new SkrError(
      unavailable ? 'SKR_RELEASE_UNAVAILABLE' : 'SKR_RELEASE_REFUSED',
      `key release of ${o.kid} from ${o.akvEndpoint} failed with HTTP ${res.status} ${detail}${hint}`,
      { upstreamStatus: res.status },
    )
  }
  let jws: unknown
  try {
    jws = (JSON.parse(text) as { value?: unknown }).value
  } catch {
    jws = undefined
  }
  if (typeof jws !== 'string') throw new SkrError('SKR_JWS_INVALID', `key release from ${o.akvEndpoint} answered without a JWS value`)

  step("verifying the vault's signature")
  const roots = [...defaultTrustedRoots(), ...(o.ca ?? []).map((p) => new X509Certificate(p))]
  const payload = await verifyReleaseJws(jws, { host: o.akvEndpoint, roots })
  const key = payload.response?.key?.key
  const enc = payload.request?.enc
  if (!key?.key_hsm || !enc) throw new SkrError('SKR_JWS_INVALID', 'the key release payload lacks response.key.key.key_hsm or request.enc')
  let ciphertext: Buffer
  try {
    ciphertext = Buffer.from((JSON.parse(Buffer.from(key.key_hsm, 'base64url').toString('utf8')) as { ciphertext: string }).ciphertext, 'base64url')
  } catch (err) {
    throw new SkrError('SKR_JWS_INVALID', 'key_hsm in the key release payload is not the expected JSON', { cause: err })
  }
  const plaintext = unwrapReleasedKey(ciphertext, enc, wrapping.privateKey)
  const released = interpretReleasedKey(key.kty, key.key_ops, plaintext)
  step('key released', { kty: released.kty })
  return released
}
