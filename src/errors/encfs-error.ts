/**
 * Every error encfs raises on purpose carries a stable `code` (for programs and tests) and a
 * message that says what went wrong and what to do next (for people). The CLI prints the
 * message on one line and exits non-zero.
 */
export class EncfsError extends Error {
  readonly code: string

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.code = code
    this.name = new.target.name
  }
}

/** True when `err` is an EncfsError with the given code. */
export function hasCode(err: unknown, code: string): boolean {
  return err instanceof EncfsError && err.code === code
}
