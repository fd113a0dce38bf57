import type { Logger } from '../log/logger.js'
import { storageCredential, type IdentityConfig } from '../storage/credential.js'
import { SkrError } from './errors.js'

/** Key Vault and Managed HSM take tokens for different resources (spec §5.1). */
export function vaultResource(akvEndpoint: string): string {
  return akvEndpoint.includes('managedhsm') ? 'https://managedhsm.azure.net' : 'https://vault.azure.net'
}

/** A bearer token for the vault from the managed or workload identity, with the identity retries remotefs uses for storage. */
export async function vaultToken(akvEndpoint: string, identity: IdentityConfig | undefined, o: { logger?: Logger; signal?: AbortSignal; retries?: number; retryDelayMs?: number }): Promise<string> {
  const resource = vaultResource(akvEndpoint)
  const credential = storageCredential(identity, { logger: o.logger, retries: o.retries, retryDelayMs: o.retryDelayMs })
  try {
    const token = await credential.getToken(`${resource}/.default`, { abortSignal: o.signal })
    if (!token?.token) throw new Error('no token')
    return token.token
  } catch (err) {
    throw new SkrError('SKR_IDENTITY', `cannot get a token for ${resource} (key release from ${akvEndpoint}): ${(err as Error).message}`, { cause: err })
  }
}
