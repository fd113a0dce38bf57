import { request } from '../http/request.js'
import { redactUrl } from '../log/redact.js'
import { StorageError } from './errors.js'
import { checkStorageRequest, SERVICE_VERSION } from './range-request.js'
import { AnswerHeaders, BlobHttpError } from './rest-error.js'

export type BlobType = 'BlockBlob' | 'PageBlob' | 'AppendBlob'

export interface BlobProperties {
  size: number
  /** As the service sends it, quotes included: sent back as If-Match. */
  etag: string
  blobType: BlobType
}

/**
 * Get Blob Properties, a HEAD on the project's Node.js client: what opening a blob for reading
 * needs, without the Azure SDK, so that a read-only mount on the libcurl client never loads it
 * (docs/data-path.md#memory). One attempt (withStorageRetry retries); an answer other than 200 is
 * a BlobHttpError read as the SDK's RestError (status, x-ms-error-code, Retry-After);
 * `authorization` is a whole header line (BearerToken).
 */
export async function headBlob(url: string, o: { authorization?: string; signal?: AbortSignal; timeoutMs: number }): Promise<BlobProperties> {
  const lines = [`x-ms-version: ${SERVICE_VERSION}`, 'user-agent: encfs', ...(o.authorization ? [o.authorization] : [])]
  checkStorageRequest(url, lines)
  const headers = Object.fromEntries(lines.map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 1).trim()]))
  let res: Awaited<ReturnType<typeof request>>
  try {
    res = await request(url, { method: 'HEAD', headers, timeoutMs: o.timeoutMs, ...(o.signal ? { signal: o.signal } : {}), what: 'reading the blob properties' })
  } catch (err) {
    // The client reports an aborted exchange as unreachable: the stop (or the attempt's deadline) is what happened.
    o.signal?.throwIfAborted()
    throw err
  }
  const h = AnswerHeaders.of(res.headers)
  if (res.status !== 200) {
    const code = h.get('x-ms-error-code')
    throw new BlobHttpError(`the blob service answered ${res.status}${code ? ` ${code}` : ''}`, {
      statusCode: res.status,
      ...(code ? { code } : {}),
      headers: h,
      request: { method: 'HEAD', url: redactUrl(url) },
    })
  }
  const size = Number(h.get('content-length'))
  if (!Number.isSafeInteger(size) || size < 0) throw new StorageError('STORAGE_BAD_ANSWER', `${redactUrl(url)} answered its properties without a valid Content-Length`)
  return { size, etag: h.get('etag') ?? '', blobType: (h.get('x-ms-blob-type') ?? 'BlockBlob') as BlobType }
}

/** A URL the blob service can name a blob by: a container and a blob in its path (the SDK refuses others too). */
export function checkBlobUrl(url: string): void {
  let u: URL
  try {
    u = new URL(url)
  } catch (err) {
    throw new StorageError('STORAGE_BAD_URL', `azure_url ${redactUrl(url)} is not a blob URL: ${(err as Error).message}`, { cause: err })
  }
  if (u.pathname.split('/').filter(Boolean).length < 2) {
    throw new StorageError('STORAGE_BAD_URL', `azure_url ${redactUrl(url)} is not a blob URL: its path names no container and blob`)
  }
}
