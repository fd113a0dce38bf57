import { setTimeout as sleep } from 'node:timers/promises'

/**
 * The one retry loop of encfs: HTTP requests, storage requests, identity tokens and the waits
 * for a program or a mount to come up all go through it, each with its own policy (how many
 * attempts, how long in all, how long between them, what is worth another try). Hand-written
 * loops drifted apart (one honoured Retry-After, one had no jitter, one ignored the caller's
 * abort); one loop keeps them alike.
 */

/** What a failure (or an answer) is worth: another attempt (after `retryAfterMs` when the service said so), or none. */
export type Verdict = { retry: false } | { retry: true; retryAfterMs?: number }

export const RETRY: Verdict = { retry: true }
export const STOP: Verdict = { retry: false }

/** Why the loop ended without a success: the failure was final, or a limit was reached. */
export type GiveUpReason = 'final' | 'attempts' | 'budget' | 'retry-after'

export interface RetryEvent<T> {
  /** The attempt that just failed, 1-based. */
  attempt: number
  /** Its failure, or (for `retryResult`) the answer that asked for another attempt. */
  error?: unknown
  result?: T
  retryAfterMs?: number
  elapsedMs: number
}

export interface RetryPolicy<T> {
  /** Attempts in all (default: no limit but the budget). */
  attempts?: number
  /** No attempt starts later than this after the first one started (default: no limit). */
  budgetMs?: number
  /** The pause before retry n (1-based) when the service did not say how long to wait. */
  backoff?: (retry: number) => number
  /**
   * How a Retry-After (plus a little jitter, so that many clients told the same do not come back
   * at the same instant) relates to the backoff: `instead` of it (default), or `at-least` the
   * backoff (for a backoff rule that must hold whatever the service says).
   */
  retryAfter?: 'instead' | 'at-least'
  /** The longest Retry-After honoured: an answer asking for more ends the retries. */
  maxRetryAfterMs?: number
  /** Aborting stops the wait between attempts at once (with the signal's AbortError). */
  signal?: AbortSignal
  /** Whether a failure is worth another attempt (default: every failure is). */
  classify?: (err: unknown, attempt: number) => Verdict
  /** Whether an answer is worth another attempt instead of being returned (default: none is). */
  retryResult?: (result: T, attempt: number) => Verdict
  /** Told before each wait: for the caller's log line. */
  onRetry?: (event: RetryEvent<T> & { delayMs: number }) => void
  /**
   * Told when the retries end without a success; then the last failure is thrown, or the last
   * answer returned, unless this throws an error of its own (a timeout said in the caller's terms).
   */
  onGiveUp?: (event: RetryEvent<T> & { reason: GiveUpReason }) => void
}

/** Exponential backoff: retry n waits between `spread[0]` and `spread[1]` times min(maxMs, baseMs * 2^(n-1)). */
export function exponentialBackoff(baseMs: number, maxMs: number, spread: readonly [number, number] = [0, 1]): (retry: number) => number {
  return (retry) => {
    const step = Math.min(maxMs, baseMs * 2 ** (retry - 1))
    return step * (spread[0] + Math.random() * (spread[1] - spread[0]))
  }
}

/** The same pause before every retry. */
export const constantBackoff = (ms: number) => (): number => ms

/** Retry-After plus jitter: up to a quarter of it (at least 100 ms, at most 1 s) more. */
export function jitteredRetryAfter(ms: number): number {
  return ms + Math.random() * Math.min(1000, ms / 4 + 100)
}

/**
 * Runs `attempt` until it succeeds (or answers something `retryResult` accepts), a failure is
 * final, or the attempts, the budget or a too long Retry-After end it: then the last failure is
 * thrown as it was (or the last answer returned), so callers keep their own errors.
 */
export async function retry<T>(attempt: (n: number) => Promise<T>, policy: RetryPolicy<T>): Promise<T> {
  const started = Date.now()
  const attempts = policy.attempts ?? Infinity
  const backoff = policy.backoff ?? exponentialBackoff(500, 10_000)
  for (let n = 1; ; n++) {
    let verdict: Verdict
    let event: RetryEvent<T>
    let failed = false
    let failure: unknown
    try {
      const result = await attempt(n)
      verdict = policy.retryResult?.(result, n) ?? STOP
      if (!verdict.retry) return result
      event = { attempt: n, result, elapsedMs: Date.now() - started }
    } catch (err) {
      failed = true
      failure = err
      verdict = policy.signal?.aborted ? STOP : (policy.classify?.(err, n) ?? RETRY)
      event = { attempt: n, error: err, elapsedMs: Date.now() - started }
    }
    const giveUp = (reason: GiveUpReason): T => {
      policy.onGiveUp?.({ ...event, reason })
      if (failed) throw failure
      return event.result as T
    }
    if (!verdict.retry) return giveUp('final')
    const retryAfterMs = verdict.retryAfterMs
    if (retryAfterMs !== undefined) event.retryAfterMs = retryAfterMs
    if (n >= attempts) return giveUp('attempts')
    if (retryAfterMs !== undefined && policy.maxRetryAfterMs !== undefined && retryAfterMs > policy.maxRetryAfterMs) return giveUp('retry-after')
    const pause = backoff(n)
    const delayMs = retryAfterMs === undefined ? pause : policy.retryAfter === 'at-least' ? Math.max(jitteredRetryAfter(retryAfterMs), pause) : jitteredRetryAfter(retryAfterMs)
    if (policy.budgetMs !== undefined && event.elapsedMs + delayMs > policy.budgetMs) return giveUp('budget')
    policy.onRetry?.({ ...event, delayMs })
    await sleep(delayMs, undefined, policy.signal ? { signal: policy.signal } : undefined)
  }
}

class NotYet extends Error {}

/**
 * Asks `ready` every `intervalMs` until it says yes (true) or `timeoutMs` has passed (false).
 * An error thrown by `ready` ends the wait and is thrown (a child that exited will not come up).
 */
export async function waitFor(ready: () => Promise<boolean>, o: { intervalMs: number; timeoutMs?: number; signal?: AbortSignal }): Promise<boolean> {
  try {
    await retry(
      async () => {
        if (!(await ready())) throw new NotYet()
      },
      { budgetMs: o.timeoutMs, backoff: constantBackoff(o.intervalMs), signal: o.signal, classify: (err) => (err instanceof NotYet ? RETRY : STOP) },
    )
    return true
  } catch (err) {
    if (err instanceof NotYet) return false
    throw err
  }
}
