import { ManagedIdentityCredential, WorkloadIdentityCredential, type AccessToken, type GetTokenOptions, type TokenCredential } from '@azure/identity'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Logger } from '../log/logger.js'
import { silentLogger } from '../log/logger.js'
import { StorageError } from './errors.js'

export interface IdentityConfig {
  client_id?: string
  resource_id?: string
}

export interface RetryOptions {
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
 * sidecar, keep asking for a while instead of failing the mount on the first refusal.
 */
export function retryingCredential(inner: TokenCredential, what: string, o: RetryOptions = {}): TokenCredential {
  const retries = o.retries ?? 20
  const delay = o.retryDelayMs ?? 3000
  const logger = o.logger ?? silentLogger
  return {
    async getToken(scopes: string | string[], options?: GetTokenOptions): Promise<AccessToken | null> {
      let last: unknown
      for (let attempt = 1; attempt <= retries; attempt++) {
        try {
          const token = await inner.getToken(scopes, options)
          if (token) return token
          last = new Error('no token returned')
        } catch (err) {
          last = err
        }
        if (options?.abortSignal?.aborted) break
        if (attempt < retries) {
          logger.info({ attempt, retries, identity: what, err: (last as Error)?.message }, 'identity endpoint not ready; retrying')
          await sleep(delay)
        }
      }
      throw new StorageError('STORAGE_IDENTITY', `could not get a token for blob storage from ${what} after ${retries} attempts: ${(last as Error)?.message ?? last}. ` +
        'Check that the identity is assigned to the container group / pod and has a role on the storage account', { cause: last })
    },
  }
}

/** Bearer tokens for `azure_url_private: true`: workload identity when its variables are set, else managed identity. */
export function storageCredential(identity: IdentityConfig | undefined, o: RetryOptions = {}): TokenCredential {
  const inner: TokenCredential = usesWorkloadIdentity()
    ? new WorkloadIdentityCredential()
    : identity?.client_id
      ? new ManagedIdentityCredential({ clientId: identity.client_id })
      : identity?.resource_id
        ? new ManagedIdentityCredential({ resourceId: identity.resource_id })
        : new ManagedIdentityCredential()
  return retryingCredential(inner, describeIdentity(identity), o)
}
