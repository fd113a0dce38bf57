import { status } from '@grpc/grpc-js'
import { EncfsError } from '../errors/encfs-error.js'

/** Attestation cannot work here at all (no SEV-SNP device, no addon): FAILED_PRECONDITION, as skr's "SEV guest driver is missing". */
const NO_ATTESTATION = new Set(['ATTEST_NO_PROVIDER', 'ATTEST_DEVICE_MISSING', 'ATTEST_DEVICE_PERMISSION', 'ATTEST_ADDON_MISSING', 'NATIVE_ADDON_MISSING', 'ATTEST_MODE_INVALID'])

function httpStatus(err: EncfsError): number | undefined {
  for (let e: unknown = err; e instanceof Error; e = e.cause) {
    if (e instanceof EncfsError && e.upstreamStatus !== undefined) return e.upstreamStatus
  }
  // The release step reports the vault's answer in its message ("failed with HTTP 403 …").
  const m = /failed with HTTP (\d{3})/.exec(err.message)
  return m ? Number(m[1]) : undefined
}

/**
 * The gRPC status for a failed request. skr answers INVALID_ARGUMENT for bad input and Unknown
 * for everything after it; here the other failures get the status a client can act on: the
 * service refused (PERMISSION_DENIED), could not be reached or was down (UNAVAILABLE), or this
 * machine cannot do it (FAILED_PRECONDITION). See docs/keyprovider-grpc.md.
 */
export function grpcStatusOf(err: unknown): { code: status; details: string } {
  if (!(err instanceof EncfsError)) return { code: status.INTERNAL, details: "internal error (see the sidecar's log)" }
  const details = err.message
  switch (err.code) {
    case 'KEYPROVIDER_INPUT_INVALID':
    case 'KEYPROVIDER_UNWRAP_FAILED':
    case 'KEYPROVIDER_WRAP_FAILED':
      return { code: status.INVALID_ARGUMENT, details }
    case 'KEYPROVIDER_KEY_INFO':
    case 'KEYPROVIDER_KEY_NOT_RSA':
      return { code: status.FAILED_PRECONDITION, details }
    case 'HTTP_UNREACHABLE':
    case 'SKR_IDENTITY':
      return { code: status.UNAVAILABLE, details }
    case 'SKR_VAULT_UNTRUSTED':
      return { code: status.PERMISSION_DENIED, details }
    case 'SKR_RELEASE_REFUSED':
    case 'MAA_ATTEST_FAILED': {
      const http = httpStatus(err)
      return { code: http !== undefined && (http >= 500 || http === 429 || http === 408) ? status.UNAVAILABLE : status.PERMISSION_DENIED, details }
    }
    default:
      return { code: NO_ATTESTATION.has(err.code) ? status.FAILED_PRECONDITION : status.UNKNOWN, details }
  }
}
