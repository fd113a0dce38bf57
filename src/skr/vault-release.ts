import { X509Certificate } from 'node:crypto'
import { silentLogger, type Logger } from '../log/logger.js'
import type { ReportProvider } from '../attestation/providers/provider.js'
import type { Collateral } from '../attestation/collateral.js'
import type { UvmInformation } from '../attestation/uvm-info.js'
import type { IdentityConfig } from '../identity/credential.js'
import { request } from '../http/request.js'
import { serviceErrorDetail } from '../http/error-detail.js'
import { SkrError } from './errors.js'
import { verifyReleaseJws } from './release-jws.js'
import { defaultTrustedRoots } from './trust.js'
import { vaultToken } from './vault-token.js'
import { trustedVault, type VaultHost } from './vault-hosts.js'

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
  /** The process's MAA User-Agent (src/maa/user-agent.ts). */
  maaUserAgent?: string
  /** The configuration's key.kty, only for the log line Go writes (the vault says the real type). */
  kty?: string
  /** Attempts for the MAA and the vault request each (429, 5xx and transport errors are retried; default 4 and 3). */
  attempts?: number
}

export type Step = (name: string, extra?: Record<string, unknown>) => void

/** A release's progress lines (`<prefix>: <step>`, info, with the kid). */
export function stepLogger(o: { kid: string; logger?: Logger }, prefix = 'key release'): Step {
  const logger = o.logger ?? silentLogger
  return (name, extra = {}) => logger.info({ kid: o.kid, ...extra }, `${prefix}: ${name}`)
}

/** The release's vault as trustedVault() accepts it (before any token is minted), named by the field that gave it. */
export function releaseVault(o: Pick<ReleaseOptions, 'akvEndpoint' | 'akvField' | 'vaultHosts'>): VaultHost {
  return trustedVault(o.akvEndpoint, { field: o.akvField ?? 'the vault endpoint', hosts: o.vaultHosts })
}

/** The caller's bearer token for the vault, else the identity's. */
export async function vaultBearer(o: Pick<ReleaseOptions, 'accessToken' | 'identity' | 'signal'> & { vault: VaultHost }, step: Step, logger: Logger): Promise<string> {
  if (o.accessToken) return o.accessToken
  step('getting a vault token from the identity')
  return vaultToken(o.vault, o.identity, { logger, signal: o.signal })
}

/** What the vault released: the key's JWK members, the wrapping algorithm and the wrapped bytes. */
export interface VaultRelease {
  key: { kty?: string; key_ops?: string[] }
  enc: string
  ciphertext: Buffer
}

/**
 * POST /keys/{kid}/release with the MAA token as target (and `enc` when given), the JWS verified
 * (signature, chain, the vault's host name), the wrapped key taken out of key_hsm.
 */
export async function vaultRelease(
  o: Pick<ReleaseOptions, 'kid' | 'accessToken' | 'identity' | 'ca' | 'logger' | 'signal' | 'attempts'> & {
    /** The vault as trustedVault() accepted it: nothing reaches a host that was not checked first. */
    vault: VaultHost
  },
  token: string,
  wantEnc: string | undefined,
  step: Step,
): Promise<VaultRelease> {
  const logger = o.logger ?? silentLogger
  const bearer = await vaultBearer(o, step, logger)
  step('requesting the release', { akv: o.vault.endpoint })
  logger.info(`Releasing key ${o.kid}...`)
  const url = `https://${o.vault.endpoint}/keys/${o.kid}/release?api-version=7.4`
  const res = await request(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${bearer}` },
    body: JSON.stringify(wantEnc ? { target: token, enc: wantEnc } : { target: token }),
    what: 'key release',
    attempts: o.attempts ?? 3,
    ca: o.ca,
    logger,
    signal: o.signal,
  })
  const text = res.body.toString('utf8')
  if (res.status < 200 || res.status > 207) {
    const detail = serviceErrorDetail(text)
    const hint =
      res.status === 401
        ? ' (the bearer token is missing, expired or for another resource)'
        : res.status === 403
          ? " (the attestation does not satisfy the key's release policy, or the identity lacks the release permission; encfs release --explain with the same endpoints and kid shows which clause fails)"
          : res.status === 404
            ? ' (check key.kid and key.akv.endpoint)'
            : ''
    const unavailable = res.status === 408 || res.status === 429 || res.status >= 500
    throw new SkrError(
      unavailable ? 'SKR_RELEASE_UNAVAILABLE' : 'SKR_RELEASE_REFUSED',
      `key release of ${o.kid} from ${o.vault.endpoint} failed with HTTP ${res.status} ${detail}${hint}`,
      { upstreamStatus: res.status },
    )
  }
  let jws: unknown
  try {
    jws = (JSON.parse(text) as { value?: unknown }).value
  } catch {
    jws = undefined
  }
  if (typeof jws !== 'string') throw new SkrError('SKR_JWS_INVALID', `key release from ${o.vault.endpoint} answered without a JWS value`)

  step("verifying the vault's signature")
  const roots = [...defaultTrustedRoots(), ...(o.ca ?? []).map((p) => new X509Certificate(p))]
  const payload = await verifyReleaseJws(jws, { host: o.vault.endpoint, roots })
  const key = payload.response?.key?.key
  const enc = payload.request?.enc
  if (!key?.key_hsm || !enc) throw new SkrError('SKR_JWS_INVALID', 'the key release payload lacks response.key.key.key_hsm or request.enc')
  let ciphertext: Buffer
  try {
    ciphertext = Buffer.from((JSON.parse(Buffer.from(key.key_hsm, 'base64url').toString('utf8')) as { ciphertext: string }).ciphertext, 'base64url')
  } catch (err) {
    throw new SkrError('SKR_JWS_INVALID', 'key_hsm in the key release payload is not the expected JSON', { cause: err })
  }
  return { key, enc, ciphertext }
}
