import { silentLogger } from '../log/logger.js'
import { fetchKeyReleasePolicy } from './key-policy.js'
import { attestWrappingKey, type ReleaseOptions } from './release.js'
import { releaseVault, stepLogger, vaultBearer } from './vault-release.js'
import { evaluateReleasePolicy, type PolicyEvaluation } from './release-policy.js'
import { explainEvaluation } from './release-explain.js'

export interface ReleaseExplanation {
  evaluation: PolicyEvaluation
  /** The verified token's claims the policy was evaluated against. */
  claims: Record<string, unknown>
  /** The account for people, one line each. */
  lines: string[]
}

/**
 * What a release would present, judged by the key's own release policy without asking for the key
 * (docs/key-release.md#explain): the same attestation as a release (a fresh wrapping key in the
 * runtime data, the MAA token verified), the policy read from the vault, evaluated here.
 */
export async function explainRelease(o: ReleaseOptions): Promise<ReleaseExplanation> {
  const logger = o.logger ?? silentLogger
  const step = stepLogger(o, 'release explain')
  // As a release: the bearer token goes to this host only if it is a vault.
  const vault = releaseVault(o)
  const { attestation } = await attestWrappingKey(o, step, logger)
  const bearer = await vaultBearer({ ...o, vault }, step, logger)
  step('reading the key and its release policy', { akv: vault.endpoint })
  const key = await fetchKeyReleasePolicy({ akvEndpoint: vault.endpoint, kid: o.kid, bearer, ca: o.ca, logger, signal: o.signal })
  const evaluation = evaluateReleasePolicy(key.policy, attestation)
  step('release policy evaluated', { allowed: evaluation.ok })
  return { evaluation, claims: attestation.claims, lines: explainEvaluation(evaluation, { kid: o.kid, vault: vault.endpoint, claims: attestation.claims }) }
}
