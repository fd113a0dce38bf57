import { EncfsError } from '../errors/encfs-error.js'
import { ERROR_CODES, type ApiErrorStatus } from '../errors/codes.js'

/**
 * The HTTP status the API answers for a failed attestation or key release, so that a client can
 * tell "refused" (403: do not retry the same thing) from "an upstream service is unavailable"
 * (502 it answered nonsense, 503 it cannot be reached or is throttling, 504 it did not answer in
 * time: retry later) from "this sidecar's fault" (500). Each code's status is in the registry
 * (src/errors/codes.ts); see docs/api-errors.md.
 */
export type { ApiErrorStatus }

/** A service's own answer, for codes whose status follows it. */
function fromUpstreamStatus(status: number | undefined): ApiErrorStatus {
  if (status === undefined) return 502
  if (status === 408) return 504
  if (status === 429) return 503
  if (status >= 500 || status < 400) return 502
  return 403
}

export function apiStatusFor(err: unknown): ApiErrorStatus {
  // A transport failure anywhere in the cause chain decides: nothing was answered.
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 8; e = e.cause, depth++) {
    if (e instanceof EncfsError && (e.code === 'HTTP_TIMEOUT' || e.code === 'HTTP_UNREACHABLE')) return statusOf(e)
  }
  return err instanceof EncfsError ? statusOf(err) : 500
}

function statusOf(err: EncfsError): ApiErrorStatus {
  const status = ERROR_CODES[err.code].http
  return status === 'upstream' ? fromUpstreamStatus(err.upstreamStatus) : status
}
