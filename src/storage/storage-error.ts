import { isRestLike, type RestLike } from './rest-error.js'
import type { TokenCredential } from '@azure/identity'
import { StorageError } from './errors.js'
import { redactUrl } from '../log/redact.js'

/** What a storage error message needs to know about the blob: its URL, and whether an identity reads it. */
export interface StorageTarget {
  url: string
  credential?: TokenCredential
}

function describeAuth(o: StorageTarget): string {
  if (o.credential) return 'the managed / workload identity (azure_url_private: true)'
  return new URL(o.url).searchParams.has('sig') ? 'the SAS in azure_url' : 'anonymous access (no SAS, azure_url_private: false)'
}

/**
 * The lease codes Blob Storage answers when a request's lease id is not the blob's active lease
 * (412 for reads and writes, 409 for lease operations); Azurite says LeaseLost. LeaseAlreadyPresent
 * is not one: it is what taking a lease held by another writer answers (STORAGE_LEASED).
 */
const LEASE_LOST = /^Lease(Lost|NotPresentWith\w+|IdMismatchWith\w+|IsBrokenAndCannotBeRenewed|IsBreakingAndCannotBeChanged)$/

/** The lease error of an answer with one of LEASE_LOST's codes, for `what`. */
export function leaseLost(what: string, o: StorageTarget, code: string, cause?: unknown): StorageError {
  return new StorageError(
    'STORAGE_LEASE_LOST',
    `${what}: remotefs no longer holds the write lease on ${redactUrl(o.url)} (${code}): another writer broke or took it, or it expired while storage could not be reached. ` +
      "Reads and writes that need storage fail with EIO from now on, so that another writer's bytes are never served or overwritten; find the other writer, then restart remotefs",
    { cause },
  )
}

/** Turns SDK and transport errors into messages that say which blob, which credential and what to check. */
export function storageError(err: unknown, o: StorageTarget, what: string): StorageError {
  const url = redactUrl(o.url)
  if (err instanceof StorageError) return err
  if (isRestLike(err)) return restError(err, o, what)
  if (err instanceof Error && err.name === 'AbortError') return new StorageError('STORAGE_ABORTED', `${what}: aborted`, { cause: err })
  const e = err as NodeJS.ErrnoException
  // A transport failure has an errno code; anything else is an answer that made no sense.
  if (e instanceof Error && !e.code) return new StorageError('STORAGE_BAD_ANSWER', `${what}: ${url} answered wrongly: ${e.message}`, { cause: err })
  return new StorageError('STORAGE_UNREACHABLE', `${what}: cannot reach ${new URL(o.url).host}: ${e?.message ?? String(err)}`, { cause: err })
}

function restError(err: RestLike, o: StorageTarget, what: string): StorageError {
  const url = redactUrl(o.url)
  const status = err.statusCode
  const code = err.code ?? ''
  if ((status === 409 || status === 412) && LEASE_LOST.test(code)) return leaseLost(what, o, code, err)
  if (status === 404) {
    return new StorageError(
      'STORAGE_NOT_FOUND',
      `${what}: ${url} was not found (${code || 'HTTP 404'}). Check the account, container and blob names; ` +
        'a private container read without a SAS or identity also answers 404',
      { cause: err },
    )
  }
  if (status === 401 || status === 403) {
    return new StorageError(
      'STORAGE_ACCESS_DENIED',
      `${what}: access to ${url} was denied (HTTP ${status}${code ? ` ${code}` : ''}) using ${describeAuth(o)}. ` +
        "Check the SAS permissions and expiry, the container's public access level, or the identity's role assignment (Storage Blob Data Reader)",
      { cause: err },
    )
  }
  if (status === 412) {
    return new StorageError(
      'STORAGE_BLOB_CHANGED',
      `${what}: ${url} changed since it was mounted (its ETag no longer matches). Refusing to mix two versions of the image: restart remotefs to mount the new version`,
      { cause: err },
    )
  }
  if (status === 416) return new StorageError('STORAGE_SHORT_READ', `${what}: ${url} is shorter than expected (HTTP 416)`, { cause: err })
  if (status === undefined || status === 0) {
    return new StorageError('STORAGE_UNREACHABLE', `${what}: cannot reach ${new URL(o.url).host}: ${err.message}`, { cause: err })
  }
  return new StorageError('STORAGE_READ_FAILED', `${what}: ${url} answered HTTP ${status}${code ? ` ${code}` : ''}: ${err.message.split('\n')[0]}`, { cause: err })
}
