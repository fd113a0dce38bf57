import type { CurlOutcome } from '../http/curl-client.js'
import { redactUrl } from '../log/redact.js'
import { AnswerHeaders, BlobHttpError } from './rest-error.js'

/**
 * What a failed exchange becomes: a BlobHttpError shaped as the SDK's RestError (statusCode, code
 * from x-ms-error-code, the response with its Retry-After), so that storageError() and the retry
 * classifier of src/storage/retry.ts treat both clients alike. A transport failure is one without
 * status, as core-rest-pipeline reports one. The request carries the URL without its SAS.
 */
export function outcomeError(o: CurlOutcome, method: 'GET' | 'PUT', url: string): BlobHttpError {
  const request = { method, url: redactUrl(url) }
  if (o.status === 0 || o.curlCode !== 0) {
    return new BlobHttpError(o.message ?? `libcurl error ${o.curlCode}`, { code: 'REQUEST_SEND_ERROR', request })
  }
  const headers = AnswerHeaders.parse(o.headers)
  const code = headers.get('x-ms-error-code')
  return new BlobHttpError(`the blob service answered ${o.status}${code ? ` ${code}` : ''}`, { statusCode: o.status, ...(code ? { code } : {}), headers, request })
}
