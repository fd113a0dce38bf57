import { EncfsError } from '../errors/encfs-error.js'
import { HttpError } from '../http/errors.js'

/**
 * The HTTP status the API answers for a failed attestation or key release, so that a client can
 * tell "refused" (403: do not retry the same thing) from "an upstream service is unavailable"
 * (502 it answered nonsense, 503 it cannot be reached or is throttling, 504 it did not answer in
 * time: retry later) from "this sidecar's fault" (500). See docs/api-errors.md.
 */
export type ApiErrorStatus = 403 | 500 | 502 | 503 | 504

/** Upstream answers that are not a decision about us: the service failed, or we cannot trust what it said. */
const BAD_UPSTREAM_ANSWER = new Set([
  'MAA_BAD_ANSWER',
  'SKR_JWS_INVALID', 'SKR_JWS_SIGNATURE', 'SKR_CHAIN_INVALID', 'SKR_CHAIN_EXPIRED', 'SKR_CHAIN_UNTRUSTED', 'SKR_HOST_MISMATCH',
  'SKR_UNWRAP_FAILED', 'SKR_UNWRAP_ALGORITHM', 'SKR_KEY_TYPE', 'KEY_RELEASED_SIZE', 'KEY_RELEASED_TYPE',
  'ATTEST_CERT_FETCH', 'ATTEST_THIM_JSON', 'ATTEST_CHAIN_INVALID', 'ATTEST_CHAIN_EXPIRED', 'ATTEST_CHAIN_UNTRUSTED', 'ATTEST_VCEK_INVALID', 'ATTEST_TCB_MISMATCH', 'ATTEST_TCBM_INVALID',
])
/** Services we need that are not there (the identity endpoint, the certificate cache). */
const UPSTREAM_UNAVAILABLE = new Set(['SKR_IDENTITY', 'ATTEST_NO_CERTIFICATES'])

function fromUpstreamStatus(status: number): ApiErrorStatus {
  if (status === 408) return 504
  if (status === 429) return 503
  if (status >= 500 || status < 400) return 502
  return 403
}

export function apiStatusFor(err: unknown): ApiErrorStatus {
  // A transport failure anywhere in the cause chain decides: nothing was answered.
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 8; e = e.cause, depth++) {
    if (e instanceof EncfsError && e.code === 'HTTP_TIMEOUT') return 504
    if (e instanceof EncfsError && e.code === 'HTTP_UNREACHABLE') return 503
  }
  if (err instanceof HttpError && err.status !== undefined) return fromUpstreamStatus(err.status)
  if (err instanceof EncfsError) {
    if (BAD_UPSTREAM_ANSWER.has(err.code)) return 502
    if (UPSTREAM_UNAVAILABLE.has(err.code)) return 503
  }
  return 500
}
