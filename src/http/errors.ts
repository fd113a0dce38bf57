import { EncfsError, type EncfsErrorOptions } from '../errors/encfs-error.js'

/**
 * The HTTP client's own failures: nothing usable came back (HTTP_TIMEOUT, HTTP_UNREACHABLE), or
 * the trust store cannot be read, or a request was refused before it was sent (a header that
 * would inject others, a scheme other than http or https). A service's answer is its domain's error (MaaError, SkrError),
 * carrying the answer's status as `upstreamStatus`.
 */
export class HttpError extends EncfsError {
  constructor(code: 'HTTP_TIMEOUT' | 'HTTP_UNREACHABLE' | 'HTTP_TRUST_STORE' | 'HTTP_HEADER_INVALID' | 'HTTP_URL_REFUSED', message: string, options?: EncfsErrorOptions) {
    super(code, message, options)
  }
}
