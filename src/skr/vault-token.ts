import type { Logger } from '../log/logger.js'
import { identityCredential, type IdentityConfig } from '../identity/credential.js'
import { SkrError } from './errors.js'
import type { VaultHost } from './vault-hosts.js'

const NEEDS = {
  release: 'may release the key (the Key Vault Crypto Service Release User role, or an access policy with the release permission)',
  import: 'may import keys (the Key Vault Crypto Officer role, or an access policy with the import permission)',
} as const

/**
 * A bearer token for a trusted vault (trustedVault(): its audience comes from the suffix it
 * matched, docs/key-release.md#identity-tokens) from the managed or workload identity, with the
 * identity retries remotefs uses for storage.
 */
export async function vaultToken(
  vault: VaultHost,
  identity: IdentityConfig | undefined,
  o: { logger?: Logger; signal?: AbortSignal; retries?: number; retryDelayMs?: number; purpose?: 'release' | 'import' },
): Promise<string> {
  const resource = vault.audience
  const purpose = o.purpose ?? 'release'
  const credential = identityCredential(
    identity,
    {
      what: `${resource} (key ${purpose} ${purpose === 'release' ? 'from' : 'into'} ${vault.endpoint})`,
      needs: NEEDS[purpose],
      error: (message, cause) => new SkrError('SKR_IDENTITY', message, { cause }),
    },
    { logger: o.logger, retries: o.retries, retryDelayMs: o.retryDelayMs },
  )
  const token = await credential.getToken(`${resource}/.default`, { abortSignal: o.signal })
  if (!token?.token) throw new SkrError('SKR_IDENTITY', `the identity answered no token for ${resource} (key ${purpose} at ${vault.endpoint})`)
  return token.token
}
