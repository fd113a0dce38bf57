import { EncfsError, type EncfsErrorOptions } from '../errors/encfs-error.js'

/**
 * The HTTP client's own failures: nothing usable came back (HTTP_TIMEOUT, HTTP_UNREACHABLE), or
 * the trust store cannot be read. A service's answer is its domain's error (MaaError, SkrError),
 * carrying the answer's status as `upstreamStatus`.
 */
export class HttpError extends EncfsError {
  constructor(code: 'HTTP_TIMEOUT' | 'HTTP_UNREACHABLE' | 'HTTP_TRUST_STORE', message: string, options?: EncfsErrorOptions) {
    super(code, message, options)
  }
}
