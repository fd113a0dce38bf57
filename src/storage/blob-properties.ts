import { request as httpRequest, type IncomingMessage } from 'node:http'
import { request as httpsRequest } from 'node:https'
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
 * Get Blob Properties, a HEAD, with Node's own HTTP client: what opening a blob for reading needs,
 * without the Azure SDK, so that a read-only mount on the libcurl client never loads it (about
 * 20 MiB of RSS; docs/data-path.md#memory). An answer other than 200 is a BlobHttpError read as
 * the SDK's RestError (status, x-ms-error-code, Retry-After); `authorization` is a whole header
 * line (BearerToken).
 */
export function headBlob(url: string, o: { authorization?: string; signal?: AbortSignal; timeoutMs: number }): Promise<BlobProperties> {
  const lines = [`x-ms-version: ${SERVICE_VERSION}`, 'user-agent: encfs', ...(o.authorization ? [o.authorization] : [])]
  checkStorageRequest(url, lines)
  const headers = Object.fromEntries(lines.map((l) => [l.slice(0, l.indexOf(':')).trim(), l.slice(l.indexOf(':') + 1).trim()]))
  const target = new URL(url)
  const request = { method: 'HEAD', url: redactUrl(url) }
  return new Promise((resolve, reject) => {
    const send = target.protocol === 'https:' ? httpsRequest : httpRequest
    const req = send(target, { method: 'HEAD', headers, timeout: o.timeoutMs, ...(o.signal ? { signal: o.signal } : {}) }, (res: IncomingMessage) => {
      res.resume()
      const h = AnswerHeaders.of(res.headers)
      const status = res.statusCode ?? 0
      if (status !== 200) {
        const code = h.get('x-ms-error-code')
        return reject(new BlobHttpError(`the blob service answered ${status}${code ? ` ${code}` : ''}`, { statusCode: status, ...(code ? { code } : {}), headers: h, request }))
      }
      const size = Number(h.get('content-length'))
      if (!Number.isSafeInteger(size) || size < 0) return reject(new StorageError('STORAGE_BAD_ANSWER', `${redactUrl(url)} answered its properties without a valid Content-Length`))
      resolve({ size, etag: h.get('etag') ?? '', blobType: (h.get('x-ms-blob-type') ?? 'BlockBlob') as BlobType })
    })
    req.on('timeout', () => req.destroy(Object.assign(new Error(`no answer within ${o.timeoutMs} ms`), { code: 'ETIMEDOUT' })))
    req.on('error', reject)
    req.end()
  })
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
