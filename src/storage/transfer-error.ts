import { RestError, createHttpHeaders, createPipelineRequest, type HttpHeaders } from '@azure/core-rest-pipeline'
import type { CurlOutcome } from '../http/curl-client.js'
import { redactUrl } from '../log/redact.js'

/** The raw header block of an answer as the SDK's headers (Retry-After, x-ms-error-code, ...). */
export function parseHeaders(raw: string | undefined): HttpHeaders {
  const headers = createHttpHeaders()
  for (const line of (raw ?? '').split('\r\n')) {
    const colon = line.indexOf(':')
    if (colon > 0) headers.set(line.slice(0, colon).trim(), line.slice(colon + 1).trim())
  }
  return headers
}

/**
 * What a failed exchange becomes: a RestError shaped as the SDK's (statusCode, code from
 * x-ms-error-code, the response with its Retry-After), so that storageError() and the retry
 * classifier of src/storage/retry.ts treat both clients alike. A transport failure is a RestError
 * without status, as core-rest-pipeline reports one. The request carries the URL without its SAS.
 */
export function outcomeError(o: CurlOutcome, method: 'GET' | 'PUT', url: string): RestError {
  const request = createPipelineRequest({ url: redactUrl(url), method })
  if (o.status === 0 || o.curlCode !== 0) {
    return new RestError(o.message ?? `libcurl error ${o.curlCode}`, { code: 'REQUEST_SEND_ERROR', request })
  }
  const headers = parseHeaders(o.headers)
  const code = headers.get('x-ms-error-code')
  return new RestError(`the blob service answered ${o.status}${code ? ` ${code}` : ''}`, {
    statusCode: o.status,
    ...(code ? { code } : {}),
    request,
    response: { status: o.status, headers, request },
  })
}
