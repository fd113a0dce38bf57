import { EncfsError } from '../errors.js'

/** One clear message on stderr and a non-zero exit; a stack trace only for real bugs. */
export function failureMessage(err: unknown): string {
  if (err instanceof EncfsError) return `${err.message} [${err.code}]`
  if (err instanceof Error) return `unexpected error: ${err.stack ?? err.message}`
  return `unexpected error: ${String(err)}`
}

export function exitWith(prog: string, err: unknown, code = 1): never {
  process.stderr.write(`${prog}: ${failureMessage(err)}\n`)
  process.exit(code)
}
