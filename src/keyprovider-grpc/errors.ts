import { EncfsError, type EncfsErrorOptions } from '../errors/encfs-error.js'
import type { ErrorCode } from '../errors/codes.js'

/**
 * Errors of the keyprovider service. Codes: KEYPROVIDER_INPUT_INVALID (the request's JSON,
 * parameters or annotation; gRPC INVALID_ARGUMENT), KEYPROVIDER_KEY_INFO (the wrapping key's
 * -info.json or public key), KEYPROVIDER_KEY_NOT_RSA, KEYPROVIDER_UNWRAP_FAILED.
 */
export class KeyProviderError extends EncfsError {
  /** What is wrong with the request, one entry per problem, each naming its JSON path. */
  readonly problems: string[]

  constructor(code: ErrorCode, message: string, options?: EncfsErrorOptions & { problems?: string[] }) {
    super(code, message, options)
    this.problems = options?.problems ?? []
  }

  static invalid(what: string, problems: string[]): KeyProviderError {
    return new KeyProviderError('KEYPROVIDER_INPUT_INVALID', `invalid ${what}: ${problems.join('; ')}`, { problems })
  }
}

/**
 * A step of a request (key release, getting a report) that failed: the message names the step
 * and carries the service's reason, as the HTTP API's errors do; the code is the cause's.
 */
export class StepError extends EncfsError {
  constructor(
    readonly step: string,
    cause: unknown,
  ) {
    super(cause instanceof EncfsError ? cause.code : 'KEYPROVIDER_STEP_FAILED', `${step} failed: ${cause instanceof Error ? cause.message : String(cause)}`, { cause })
  }

  static async wrap<T>(step: string, f: () => Promise<T>): Promise<T> {
    try {
      return await f()
    } catch (err) {
      if (err instanceof KeyProviderError || err instanceof StepError) throw err
      throw new StepError(step, err)
    }
  }
}
