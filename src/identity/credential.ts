import type { AccessToken, GetTokenOptions, TokenCredential } from '@azure/identity'
import { silentLogger, type Logger } from '../log/logger.js'
import { constantBackoff, retry, RETRY, STOP } from '../retry/retry.js'

/** `azure_info.identity`: a user-assigned managed identity, or none for the system-assigned one. */
export interface IdentityConfig {
  client_id?: string
  resource_id?: string
}

/**
 * Who the token is for, in the words of the service that takes it: blob storage and the key
 * vault need different roles, and a failure must name the right one.
 */
export interface TokenAudience {
  /** What the token is for, in messages: "blob storage", "https://vault.azure.net (key release from …)". */
  what: string
  /** What the identity needs there, in messages: "has a role on the storage account". */
  needs: string
  /** The error raised when no token comes: each domain its own class and code. */
  error: (message: string, cause: unknown) => Error
}

export interface IdentityRetryOptions {
  /** Attempts before giving up (the Go sidecar: 20). */
  retries?: number
  /** Pause between attempts (the Go sidecar: 3 s). */
  retryDelayMs?: number
  logger?: Logger
}

export function usesWorkloadIdentity(env: NodeJS.ProcessEnv = process.env): boolean {
  return Boolean(env.AZURE_CLIENT_ID && env.AZURE_TENANT_ID && env.AZURE_FEDERATED_TOKEN_FILE)
}

export function describeIdentity(identity: IdentityConfig | undefined, env: NodeJS.ProcessEnv = process.env): string {
  if (usesWorkloadIdentity(env)) return `workload identity (client ${env.AZURE_CLIENT_ID})`
  if (identity?.client_id) return `managed identity with client id ${identity.client_id}`
  if (identity?.resource_id) return `managed identity ${identity.resource_id}`
  return 'the system-assigned managed identity'
}

/**
 * In a fresh pod the identity endpoint is often not up when the sidecar starts; like the Go
 * sidecar, keep asking for a while instead of failing on the first refusal.
 */
export function retryingCredential(inner: TokenCredential, who: string, audience: TokenAudience, o: IdentityRetryOptions = {}): TokenCredential {
  const retries = o.retries ?? 20
  const logger = o.logger ?? silentLogger
  return {
    async getToken(scopes: string | string[], options?: GetTokenOptions): Promise<AccessToken> {
      try {
        return await retry(
          async () => {
            const token = await inner.getToken(scopes, options)
            if (!token) throw new Error('no token returned')
            return token
          },
          {
            attempts: retries,
            backoff: constantBackoff(o.retryDelayMs ?? 3000),
            classify: () => (options?.abortSignal?.aborted ? STOP : RETRY),
            // Callers pass real AbortSignals; the sleep between attempts ends with them.
            signal: options?.abortSignal as AbortSignal | undefined,
            onRetry: ({ attempt, error }) => logger.info({ attempt, retries, identity: who, err: (error as Error)?.message }, 'identity endpoint not ready; retrying'),
          },
        )
      } catch (last) {
        throw audience.error(
          `could not get a token for ${audience.what} from ${who} after ${retries} attempts: ${(last as Error)?.message ?? last}. ` +
            `Check that the identity is assigned to the container group / pod and ${audience.needs}`,
          last,
        )
      }
    },
  }
}

/**
 * Tokens from workload identity when its variables are set, else from the configured (or the
 * system-assigned) managed identity. @azure/identity is loaded at the first token: it costs
 * remotefs about 170 ms and 25 MiB at start-up, for nothing when the configuration uses a raw key
 * and SAS URLs (docs/data-path.md, "Start-up").
 */
export function identityCredential(identity: IdentityConfig | undefined, audience: TokenAudience, o: IdentityRetryOptions = {}): TokenCredential {
  let made: Promise<TokenCredential> | undefined
  const make = async (): Promise<TokenCredential> => {
    const { ManagedIdentityCredential, WorkloadIdentityCredential } = await import('@azure/identity')
    if (usesWorkloadIdentity()) return new WorkloadIdentityCredential()
    if (identity?.client_id) return new ManagedIdentityCredential({ clientId: identity.client_id })
    if (identity?.resource_id) return new ManagedIdentityCredential({ resourceId: identity.resource_id })
    return new ManagedIdentityCredential()
  }
  const inner: TokenCredential = {
    async getToken(scopes, options) {
      made ??= make()
      return (await made).getToken(scopes, options)
    },
  }
  return retryingCredential(inner, describeIdentity(identity), audience, o)
}
