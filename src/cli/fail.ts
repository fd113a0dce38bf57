import { EncfsError, type EncfsErrorOptions } from '../errors/encfs-error.js'
import { ERROR_CODES, isUsageCode, type UsageCode } from '../errors/codes.js'
import { redactSecrets } from '../log/redact.js'
import type { Argv } from 'yargs'

/** A command line that cannot be run as given (unknown flag, missing argument, bad choice): exit 2. */
export class UsageError extends EncfsError {
  declare readonly code: UsageCode

  constructor(message: string, code: UsageCode = 'CLI_USAGE', options?: EncfsErrorOptions) {
    super(code, message, options)
  }

  /** A flag's value refused by its own parser (a log level, a format): still a usage error, with that parser's code. */
  static of(err: unknown): UsageError {
    return err instanceof EncfsError && isUsageCode(err.code)
      ? new UsageError(err.message, err.code, { cause: err })
      : new UsageError(String((err as Error)?.message ?? err), 'CLI_USAGE', { cause: err })
  }
}

/** One clear message on stderr and a non-zero exit; a stack trace only for real bugs. */
export function failureMessage(err: unknown): string {
  return redactSecrets(
    err instanceof UsageError && err.code === 'CLI_USAGE'
      ? `${err.message} (see --help) [${err.code}]`
      : err instanceof EncfsError
        ? `${err.message} [${err.code}]`
        : err instanceof Error
          ? `unexpected error: ${err.stack ?? err.message}`
          : `unexpected error: ${String(err)}`,
  )
}

/** The exit status for a failure: its code's (src/errors/codes.ts), else `fallback`. */
export function exitStatus(err: unknown, fallback = 1): number {
  return err instanceof EncfsError ? ERROR_CODES[err.code].exit : fallback
}

export function exitWith(prog: string, err: unknown, fallback = 1): never {
  process.stderr.write(`${prog}: ${failureMessage(err)}\n`)
  process.exit(exitStatus(err, fallback))
}

/**
 * The yargs `.fail` handler of every CLI: yargs's own complaints (unknown flag, missing argument,
 * bad choice) become UsageErrors; errors thrown by a command or a coerce function pass unchanged.
 */
export function usageFailure(msg: string | null | undefined, err: Error | undefined): never {
  if (err && err.name !== 'YError') throw err
  // yargs spreads some messages ("Invalid values:") over several lines.
  throw new UsageError((msg || err?.message || 'invalid command line').replace(/\s*\n\s*/g, ' ').trim())
}

/** A standalone program's yargs (remotefs, aasp): strict, --help, no --version, errors through usageFailure. */
export function asProgram<T>(y: Argv<T>): Argv<T> {
  return y.strictOptions().help().version(false).exitProcess(false).fail(usageFailure)
}
