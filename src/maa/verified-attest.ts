import { silentLogger } from '../log/logger.js'
import type { AttestInputs } from './attest-request.js'
import { attestSevSnp, type MaaOptions } from './client.js'
import type { MaaSigningKeys } from './signing-keys.js'
import { verifyMaaToken, type VerifiedToken } from './token-verify.js'

export interface VerifiedAttestation extends VerifiedToken {
  token: string
}

/**
 * An MAA token for the evidence, checked before anyone relies on it (docs/attestation.md#token-verification):
 * a vault must never be the first to notice that a token is forged, stale or about another request.
 */
export async function attestVerified(inputs: AttestInputs, o: MaaOptions & { keys?: MaaSigningKeys }): Promise<VerifiedAttestation> {
  const token = await attestSevSnp(inputs, o)
  const verified = await verifyMaaToken(token, {
    endpoint: o.endpoint,
    keys: o.keys,
    runtimeData: inputs.runtimeData,
    ca: o.ca,
    signal: o.signal,
    logger: o.logger,
    attempts: o.attempts,
  })
  ;(o.logger ?? silentLogger).info(
    { maa: o.endpoint, kid: verified.header.kid, expires: new Date(Number(verified.claims.exp) * 1000).toISOString() },
    'MAA token verified (signature, issuer, validity, runtime data)',
  )
  return { token, ...verified }
}
