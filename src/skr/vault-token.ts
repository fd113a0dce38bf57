import type { Logger } from '../log/logger.js'
import { identityCredential, type IdentityConfig } from '../identity/credential.js'
import { SkrError } from './errors.js'

/** Key Vault and Managed HSM take tokens for different resources (docs/key-release.md#identity-tokens). */
export function vaultResource(akvEndpoint: string): string {
  return akvEndpoint.includes('managedhsm') ? 'https://managedhsm.azure.net' : 'https://vault.azure.net'
}

const NEEDS = {
  release: 'may release the key (the Key Vault Crypto Service Release User role, or an access policy with the release permission)',
  import: 'may import keys (the Key Vault Crypto Officer role, or an access policy with the import permission)',
} as const

/** A bearer token for the vault from the managed or workload identity, with the identity retries remotefs uses for storage. */
export async function vaultToken(
  akvEndpoint: string,
  identity: IdentityConfig | undefined,
  o: { logger?: Logger; signal?: AbortSignal; retries?: number; retryDelayMs?: number; purpose?: 'release' | 'import' },
): Promise<string> {
  const resource = vaultResource(akvEndpoint)
  const purpose = o.purpose ?? 'release'
  const credential = identityCredential(
    identity,
    {
      what: `${resource} (key ${purpose} ${purpose === 'release' ? 'from' : 'into'} ${akvEndpoint})`,
      needs: NEEDS[purpose],
      error: (message, cause) => new SkrError('SKR_IDENTITY', message, { cause }),
    },
    { logger: o.logger, retries: o.retries, retryDelayMs: o.retryDelayMs },
  )
  const token = await credential.getToken(`${resource}/.default`, { abortSignal: o.signal })
  if (!token?.token) throw new SkrError('SKR_IDENTITY', `the identity answered no token for ${resource} (key ${purpose} at ${akvEndpoint})`)
  return token.token
}
