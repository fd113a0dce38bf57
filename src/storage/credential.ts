import type { TokenCredential } from '@azure/identity'
import { identityCredential, type IdentityConfig, type IdentityRetryOptions, type TokenAudience } from '../identity/credential.js'
import { StorageError } from './errors.js'

const BLOB_STORAGE: TokenAudience = {
  what: 'blob storage',
  needs: 'has a role on the storage account (Storage Blob Data Reader; Contributor to write)',
  error: (message, cause) => new StorageError('STORAGE_IDENTITY', message, { cause }),
}

/** Bearer tokens for `azure_url_private: true`, from the workload or managed identity. */
export function storageCredential(identity: IdentityConfig | undefined, o: IdentityRetryOptions = {}): TokenCredential {
  return identityCredential(identity, BLOB_STORAGE, o)
}
