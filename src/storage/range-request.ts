// What both blob clients share about a request for a blob's bytes, without the SDK (blob-http.ts
// loads the SDK's pipeline only for the Node.js client).
import type { TokenCredential } from '@azure/identity'
import { headerProblem, urlProblem } from '../http/request-checks.js'
import { StorageError } from './errors.js'

/** The Blob service version the reads ask for (the one @azure/storage-blob 12.x sends). */
export const SERVICE_VERSION = '2026-04-06'

/** A blob's bytes by range: RangedGet (Node.js) or NativeRangedGet (libcurl), chosen in blob-http.ts. */
export interface RangeReader {
  /**
   * Fills `target` with the blob's bytes at `offset`; If-Match `etag` when given (412 when the blob
   * changed), and `leaseId` as x-ms-lease-id (412 when it is not the blob's active lease).
   */
  readInto(offset: number, target: Buffer, o?: ReadConditions): Promise<void>
}

/** What a ranged GET is conditioned on, and its abort. */
export interface ReadConditions {
  etag?: string
  leaseId?: string
  signal?: AbortSignal
}

/**
 * An answer that is not the bytes asked for: another range, a whole blob for a part, more bytes
 * than asked, a stray answer left on a kept-alive connection. Its connection is dropped and the
 * read retried (withStorageRetry); what is left after the retries is STORAGE_BAD_ANSWER.
 */
export class UnaskedBytesError extends Error {
  override readonly name = 'UnaskedBytesError'
}

/**
 * What is wrong with a 2xx answer to a request for the blob's bytes [first, first + length), or
 * undefined when it is exactly them: a 206 with that Content-Range (and, when it says one, that
 * Content-Length), or a 200, the whole blob, when what was asked is the whole blob (from byte 0,
 * as long as the blob). The libcurl addon applies the same rule (native/http/transfer.cc) before
 * a byte reaches the caller's buffer.
 */
export function answerProblem(status: number, contentRange: string | undefined, contentLength: string | undefined, first: number, length: number): string | undefined {
  const last = first + length - 1
  const asked = `asked for bytes ${first}-${last}`
  if (contentLength !== undefined && contentLength !== String(length)) return `the answer is ${status} with Content-Length ${contentLength} (${asked})`
  if (status === 206) {
    const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(contentRange ?? '')
    if (m && m[1] === String(first) && m[2] === String(last)) return undefined
    return `the answer is 206 with Content-Range "${contentRange ?? ''}" (${asked})`
  }
  if (status === 200 && first === 0 && contentLength === String(length)) return undefined
  return `the answer is ${status}${status === 200 ? ' (a whole blob, not the range)' : ''} (${asked})`
}

/** The URL and headers of a storage request, refused before anything is sent (src/http/request-checks.ts). */
export function checkStorageRequest(url: string, headers: readonly string[]): void {
  const bad = urlProblem(url)
  if (bad) throw new StorageError('HTTP_URL_REFUSED', `refusing to request ${JSON.stringify(url.split('?')[0])}: ${bad}`)
  for (const h of headers) {
    const problem = headerProblem(h)
    if (problem) throw new StorageError('HTTP_HEADER_INVALID', `refusing to request ${JSON.stringify(url.split('?')[0])}: ${problem}`)
  }
}

export interface RangedGetOptions {
  credential?: TokenCredential
  /** Attempts per request (exponential back-off, Retry-After honoured). */
  maxTries?: number
  /** Per-attempt timeout. */
  tryTimeoutMs?: number
  /** A body that breaks off is asked for again from where it stopped, this many times. */
  resumeTries?: number
}
