import type { Logger } from '../log/logger.js'

/**
 * Every step that changes the machine registers how to undo itself. A failure half-way through
 * start-up and an orderly shutdown both unwind the same list, in reverse, so nothing is left
 * behind either way.
 */
export class UndoStack {
  private readonly steps: { what: string; undo: () => Promise<void> }[] = []

  constructor(private readonly logger: Logger) {}

  push(what: string, undo: () => Promise<void>): void {
    this.steps.push({ what, undo })
  }

  get size(): number {
    return this.steps.length
  }

  /** Runs every step even when some fail; returns the failures (already logged). */
  async unwind(): Promise<Error[]> {
    const failures: Error[] = []
    while (this.steps.length > 0) {
      const step = this.steps.pop()!
      try {
        await step.undo()
        this.logger.debug({ step: step.what }, 'undone')
      } catch (err) {
        const e = err instanceof Error ? err : new Error(String(err))
        this.logger.error({ err: e, step: step.what }, 'cleanup step failed')
        failures.push(e)
      }
    }
    return failures
  }
}
