import type { ErrorCode } from './codes.js'

export interface EncfsErrorOptions {
  cause?: unknown
  /** The HTTP status of the service's answer this error reports (MAA's, the vault's). */
  upstreamStatus?: number
}

/**
 * Every error encfs raises on purpose carries a stable `code` from the registry
 * (src/errors/codes.ts: its meaning, exit status and API status) for programs and tests, and a
 * message that says what went wrong and what to do next for people. The CLI prints the message
 * on one line and exits with the code's status.
 */
export class EncfsError extends Error {
  readonly code: ErrorCode
  readonly upstreamStatus?: number
  /** Where the failure happened, outermost first (added by withContext). */
  readonly context: string[] = []

  constructor(code: ErrorCode, message: string, options?: EncfsErrorOptions) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause })
    this.code = code
    if (options?.upstreamStatus !== undefined) this.upstreamStatus = options.upstreamStatus
    this.name = new.target.name
  }
}

/** True when `err` is an EncfsError with the given code. */
export function hasCode(err: unknown, code: ErrorCode): boolean {
  return err instanceof EncfsError && err.code === code
}

/**
 * Says where a failure happened without hiding what it is: the same error, with its class, code
 * and cause, and `context: ` in front of its message (and in `context`). Wrapping it in another
 * error instead would turn every failure into the wrapper's class.
 */
export function withContext<T>(err: T, context: string): T {
  if (err instanceof Error) {
    err.message = `${context}: ${err.message}`
    if (err instanceof EncfsError) err.context.unshift(context)
  }
  return err
}
