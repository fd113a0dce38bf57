import { isRestLike } from './rest-error.js'
import type { Logger } from '../log/logger.js'
import { silentLogger } from '../log/logger.js'
import { retryAfterMs } from '../http/request.js'
import { exponentialBackoff, retry, STOP } from '../retry/retry.js'
import { StorageError } from './errors.js'

/**
 * How storage requests are retried (docs/storage-faults.md). The Azure SDK's own policy retries
 * only 500 and 503, without jitter and without Retry-After, and does not bound an attempt that
 * gets no answer: a throttled (429) read became EIO for the application, and a connection cut in
 * the middle of a body too. This policy replaces it for every request the data path makes.
 */
export interface StorageRetryOptions {
  /** Attempts per request. */
  maxTries: number
  /** No attempt starts later than this after the first one, nor runs past it: the request's bound in all. */
  budgetMs: number
  /** Backoff before retry n is between half and all of min(maxDelayMs, baseDelayMs * 2^(n-1)). */
  baseDelayMs: number
  maxDelayMs: number
  /** The longest Retry-After honoured; an answer asking for more ends the retries. */
  maxRetryAfterMs: number
  /** One attempt may take this long plus perMiBMs for each MiB it moves, then it is abandoned. */
  attemptTimeoutMs: number
  perMiBMs: number
}

export const STORAGE_RETRY: StorageRetryOptions = {
  maxTries: 6,
  budgetMs: 60_000,
  baseDelayMs: 250,
  maxDelayMs: 8_000,
  maxRetryAfterMs: 20_000,
  attemptTimeoutMs: 30_000,
  // 256 KiB/s: slower than that, an attempt is taken for stuck.
  perMiBMs: 4_000,
}

/** The shortest an attempt is given when little of the budget is left: less is not worth sending. */
const MIN_ATTEMPT_MS = 1_000

/** Statuses that say "not now" rather than "no". */
const RETRIED_STATUS = new Set([408, 429, 500, 502, 503, 504])

class AttemptTimeout extends Error {}

function retryable(err: unknown): boolean {
  if (err instanceof AttemptTimeout) return true
  if (isRestLike(err)) return err.statusCode === undefined || err.statusCode === 0 || RETRIED_STATUS.has(err.statusCode)
  // Transport failures: a reset or cut connection (also in the middle of a body), a short body.
  return err instanceof Error && !(err instanceof StorageError)
}

function retryAfterOf(err: unknown): number | undefined {
  if (!isRestLike(err)) return undefined
  return retryAfterMs(err.response?.headers.get('retry-after') ?? undefined)
}

function describe(err: unknown): string {
  if (isRestLike(err) && err.statusCode) return `HTTP ${err.statusCode}`
  return (err as Error).message.split('\n')[0] ?? String(err)
}

/**
 * Shared by the requests of one blob: once a request has used up its retries, storage is taken
 * for down for a few seconds, and requests in that window try once instead of retrying again.
 * Without it, the kernel's retry of a failed read (after its readahead failed) doubled the time
 * an application waits for EIO during an outage.
 */
export class StorageHealth {
  private failFastUntil = 0

  constructor(private readonly windowMs = 5_000) {}

  get down(): boolean {
    return Date.now() < this.failFastUntil
  }

  failed(): void {
    this.failFastUntil = Date.now() + this.windowMs
  }

  recovered(): void {
    this.failFastUntil = 0
  }
}

export interface RetryContext {
  what: string
  logger?: Logger
  /** The caller's signal: aborting it stops at once, without retries. */
  signal?: AbortSignal
  /** Bytes the request moves, for its attempt timeout. */
  bytes?: number
  options?: Partial<StorageRetryOptions>
  health?: StorageHealth
}

/**
 * Runs `attempt` until it succeeds, a failure is final (a 4xx other than 408/429, the caller's
 * abort), or the tries or the budget run out; then the last failure is thrown.
 */
export async function withStorageRetry<T>(ctx: RetryContext, attempt: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const o = { ...STORAGE_RETRY, ...ctx.options, ...(ctx.health?.down ? { maxTries: 1 } : {}) }
  const logger = ctx.logger ?? silentLogger
  const timeoutMs = o.attemptTimeoutMs + Math.ceil(((ctx.bytes ?? 0) / (1024 * 1024)) * o.perMiBMs)
  const started = Date.now()
  // No attempt outlives the budget: a request ends within budgetMs in all (the bound of an fsync
  // and of a read on storage that does not answer), not budgetMs plus a last attempt's timeout.
  const bounded = () => Math.min(timeoutMs, Math.max(MIN_ATTEMPT_MS, o.budgetMs - (Date.now() - started)))
  const result = await retry(() => withAttemptTimeout(ctx.signal, bounded(), attempt), {
    attempts: o.maxTries,
    budgetMs: o.budgetMs,
    backoff: exponentialBackoff(o.baseDelayMs, o.maxDelayMs, [0.5, 1]),
    maxRetryAfterMs: o.maxRetryAfterMs,
    signal: ctx.signal,
    classify: (err) => (retryable(err) ? { retry: true, retryAfterMs: retryAfterOf(err) } : STOP),
    onRetry: ({ attempt: n, error, delayMs, retryAfterMs }) => {
      logger.warn(
        { what: ctx.what, attempt: n, reason: describe(error), delayMs: Math.round(delayMs), ...(retryAfterMs !== undefined ? { retryAfterMs } : {}) },
        `storage: ${describe(error)}; retrying ${ctx.what}`,
      )
    },
    onGiveUp: ({ reason, attempt: n, error, elapsedMs }) => {
      if (reason === 'final') return
      if (n > 1) logger.warn({ what: ctx.what, attempts: n, ms: elapsedMs, reason: describe(error) }, `storage: ${ctx.what} failed after ${n} attempt(s) in ${elapsedMs} ms`)
      ctx.health?.failed()
      if (error instanceof AttemptTimeout) throw new StorageError('STORAGE_TIMEOUT', `${ctx.what}: ${error.message} (${n} attempt(s))`, { cause: error })
    },
  })
  ctx.health?.recovered()
  return result
}

/** One attempt, abandoned (AttemptTimeout) when it takes longer than `timeoutMs`; the caller's abort passes through. */
async function withAttemptTimeout<T>(signal: AbortSignal | undefined, timeoutMs: number, attempt: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController()
  const onAbort = (): void => controller.abort(signal?.reason)
  signal?.addEventListener('abort', onAbort, { once: true })
  let timedOut = false
  const timer = setTimeout(() => {
    timedOut = true
    controller.abort(new AttemptTimeout(`no answer from storage within ${timeoutMs} ms`))
  }, timeoutMs)
  try {
    return await attempt(controller.signal)
  } catch (caught) {
    throw timedOut ? new AttemptTimeout(`no answer from storage within ${timeoutMs} ms`) : caught
  } finally {
    clearTimeout(timer)
    signal?.removeEventListener('abort', onAbort)
  }
}
