import { randomBytes } from 'node:crypto'
import { silentLogger, type Logger } from '../log/logger.js'
import { maaReportData } from '../attestation/report-data.js'
import { evidence } from '../attestation/evidence.js'
import { isVtpm } from '../attestation/providers/vtpm.js'
import { attestVerified, type VerifiedAttestation } from '../maa/verified-attest.js'
import { generateWrappingKey, type WrappingKey } from './wrapping-key.js'
import { unwrapReleasedKey } from './unwrap.js'
import { interpretReleasedKey, type ReleasedKey } from './released-key.js'
import { releaseVault, stepLogger, vaultRelease, type ReleaseOptions, type Step } from './vault-release.js'
import { releaseKeyOnCvm } from './cvm-release.js'

export type { ReleaseOptions } from './vault-release.js'

/**
 * Steps 1 to 3 of a release: a fresh wrapping key, an SNP report binding its JWK set, and the MAA
 * token for it, verified before any vault sees it (docs/attestation.md#token-verification).
 */
export async function attestWrappingKey(o: ReleaseOptions, step: Step, logger: Logger): Promise<{ wrapping: WrappingKey; attestation: VerifiedAttestation }> {
  const wrapping = await generateWrappingKey()
  step('getting an SNP report', { provider: o.provider.name })
  const { report: raw, chain } = await evidence(o, maaReportData(wrapping.jwks), { logger, signal: o.signal })
  step('attesting with MAA', { maa: o.maaEndpoint })
  const attestation = await attestVerified(
    { report: raw, vcekCertChain: chain.chainPem, referenceInfo: o.uvm.referenceInfo, runtimeData: wrapping.jwks, nonce: randomBytes(8).readBigUInt64LE() },
    { endpoint: o.maaEndpoint, ca: o.ca, logger, signal: o.signal, attempts: o.attempts, userAgent: o.maaUserAgent },
  )
  return { wrapping, attestation }
}

/**
 * Secure key release as the Go sidecar performs it (docs/key-release.md#release-flow): an ephemeral RSA key, an SNP
 * report binding it, an MAA token (verified), the vault's release, the JWS verified, the key unwrapped. On a
 * confidential VM's vTPM the release goes through guest attestation instead (cvm-release.ts).
 */
export async function releaseKey(o: ReleaseOptions): Promise<ReleasedKey> {
  // Before anything: the MAA token and the vault token go to this host only if it is a vault.
  const vault = releaseVault(o)
  if (isVtpm(o.provider)) return releaseKeyOnCvm(o.provider, { ...o, vault })
  const logger = o.logger ?? silentLogger
  const step = stepLogger(o)
  // Go's lines (pkg/skr), which its troubleshooting guides quote; never the bearer token.
  logger.info('Performing secure key release...')
  logger.debug(
    `Releasing key blob: keyBlob{ KID: ${o.kid}, KTY: ${o.kty ?? ''}, KeyOps: [], Authority: {Endpoint:${o.maaEndpoint} TEEType:SevSnpVM APIVersion:api-version=2020-10-01}, AKV: { Endpoint: ${o.akvEndpoint}, APIVersion: api-version=7.4 } }`,
  )
  const { wrapping, attestation } = await attestWrappingKey(o, step, logger)
  const { key, enc, ciphertext } = await vaultRelease({ ...o, vault }, attestation.token, undefined, step)
  const plaintext = unwrapReleasedKey(ciphertext, enc, wrapping.privateKey)
  const released = interpretReleasedKey(key.kty, key.key_ops, plaintext)
  step('key released', { kty: released.kty })
  return released
}
