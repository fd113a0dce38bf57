import { AnonymousCredential, BlobClient } from '@azure/storage-blob'
import type { TokenCredential } from '@azure/identity'
import { redactUrl } from '../log/redact.js'
import { StorageError } from './errors.js'

/**
 * The SDK's client of one blob, for what only it does here: leases, Put Page and properties on
 * the Node.js HTTP client. Loaded on demand (blob-source.ts), not by a read-only mount on libcurl.
 */
export function sdkBlobClient(o: { url: string; credential?: TokenCredential }): BlobClient {
  try {
    return new BlobClient(o.url, o.credential ?? new AnonymousCredential(), {
      // Retries are ours (withStorageRetry): the SDK's skip 429 and Retry-After, and never time out.
      retryOptions: { maxTries: 1 },
      userAgentOptions: { userAgentPrefix: 'encfs' },
    })
  } catch (err) {
    throw new StorageError('STORAGE_BAD_URL', `azure_url ${redactUrl(o.url)} is not a blob URL: ${(err as Error).message}`, { cause: err })
  }
}
