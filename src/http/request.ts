import { request as httpsRequest } from 'node:https'
import { request as httpRequest } from 'node:http'
import { silentLogger, type Logger } from '../log/logger.js'
import { exponentialBackoff, retry, RETRY, STOP } from '../retry/retry.js'
import { HttpError } from './errors.js'
import { defaultCaPems } from './trust-store.js'

export interface RequestOptions {
  method?: 'GET' | 'HEAD' | 'POST' | 'PUT'
  headers?: Record<string, string>
  body?: string
  /** Extra CA certificates (PEM) trusted on top of Node's roots and NODE_EXTRA_CA_CERTS. */
  ca?: string[]
  timeoutMs?: number
  /** Attempts in all; 408, 429, 5xx and transport errors are retried with exponential backoff and jitter. */
  attempts?: number
  baseDelayMs?: number
  /** The longest exponential backoff between attempts (default 10 s). */
  maxDelayMs?: number
  /** Pause before retry n (1-based) instead of exponential backoff with jitter. */
  retryDelayMs?: (retry: number) => number
  /** The longest Retry-After honoured (default 30 s): an answer asking for a longer wait is returned as it is. */
  maxRetryAfterMs?: number
  signal?: AbortSignal
  logger?: Logger
  /** What the request is for, in messages: "MAA attestation", "key release". */
  what: string
}

export interface Response {
  status: number
  headers: Record<string, string | string[] | undefined>
  body: Buffer
}

const MAX_BODY = 16 * 1024 * 1024

function once(url: URL, o: RequestOptions): Promise<Response> {
  return new Promise((resolve, reject) => {
    const secure = url.protocol === 'https:'
    const opts = {
      method: o.method ?? 'GET',
      headers: { ...(o.body !== undefined ? { 'content-length': Buffer.byteLength(o.body).toString() } : {}), ...o.headers },
      timeout: o.timeoutMs ?? 30_000,
      signal: o.signal,
      // `ca` replaces Node's default store (bundled roots and NODE_EXTRA_CA_CERTS): keep both.
      ...(secure && o.ca?.length ? { ca: [...defaultCaPems(), ...o.ca] } : {}),
    }
    const req = (secure ? httpsRequest : httpRequest)(url, opts, (res) => {
      const chunks: Buffer[] = []
      let size = 0
      res.on('data', (c: Buffer) => {
        size += c.length
        if (size > MAX_BODY) req.destroy(new Error(`answer larger than ${MAX_BODY} bytes`))
        else chunks.push(c)
      })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }))
      res.on('error', reject)
    })
    req.on('timeout', () => req.destroy(Object.assign(new Error(`no answer within ${opts.timeout} ms`), { code: 'ETIMEDOUT' })))
    req.on('error', reject)
    req.end(o.body)
  })
}

/** Retry-After in milliseconds (delta-seconds or an HTTP date), if the answer has a valid one. */
export function retryAfterMs(header: string | string[] | undefined, now = Date.now()): number | undefined {
  const value = Array.isArray(header) ? header[0] : header
  if (!value) return undefined
  if (/^\s*\d+\s*$/.test(value)) return Number(value) * 1000
  const at = Date.parse(value)
  return Number.isNaN(at) ? undefined : Math.max(0, at - now)
}

const RETRIED = (status: number) => status === 408 || status === 429 || status >= 500

/**
 * One HTTP exchange with retries; a non-2xx final answer is returned, not thrown. Between
 * attempts: the answer's Retry-After when it has one (plus a little jitter, so that many clients
 * told the same do not come back at the same instant), else exponential backoff with jitter.
 * Transport failures throw HTTP_TIMEOUT (no answer in time) or HTTP_UNREACHABLE.
 */
export async function request(url: string, o: RequestOptions): Promise<Response> {
  const logger = o.logger ?? silentLogger
  const attempts = o.attempts ?? 1
  const maxRetryAfter = o.maxRetryAfterMs ?? 30_000
  const target = new URL(url)
  let lastError: (Error & { code?: string }) | undefined
  try {
    return await retry(
      () =>
        once(target, o).catch((err: Error & { code?: string }) => {
          lastError = err
          throw err
        }),
      {
        attempts,
        backoff: o.retryDelayMs ?? exponentialBackoff(o.baseDelayMs ?? 500, o.maxDelayMs ?? 10_000, [0.5, 1.5]),
        retryAfter: o.retryDelayMs ? 'at-least' : 'instead',
        maxRetryAfterMs: maxRetryAfter,
        signal: o.signal,
        retryResult: (res) => (RETRIED(res.status) ? { retry: true, retryAfterMs: retryAfterMs(res.headers['retry-after']) } : STOP),
        classify: (err, attempt) => {
          const reason = (err as Error).message
          logger.warn({ host: target.host, attempt, attempts, reason }, `${o.what}: ${reason}${attempt < attempts ? '; retrying' : ''}`)
          return RETRY
        },
        onRetry: ({ attempt, result, retryAfterMs: ra, delayMs }) => {
          const wait = ra !== undefined ? { retryAfterMs: ra } : {}
          if (result) logger.warn({ host: target.host, status: result.status, attempt, attempts, ...wait }, `${o.what}: HTTP ${result.status}; retrying`)
          logger.debug(
            { host: target.host, attempt: attempt + 1, delayMs: Math.round(delayMs), ...wait },
            `${o.what}: waiting ${Math.round(delayMs)} ms before attempt ${attempt + 1}`,
          )
        },
        onGiveUp: ({ reason, result, retryAfterMs: ra }) => {
          if (reason === 'retry-after' && result)
            logger.warn(
              { host: target.host, status: result.status, retryAfterMs: ra },
              `${o.what}: HTTP ${result.status} asking to retry after ${Math.round((ra ?? 0) / 1000)} s, longer than ${maxRetryAfter / 1000} s; giving up`,
            )
        },
      },
    )
  } catch (err) {
    // The wait between attempts was aborted: that AbortError, as it is.
    if (err !== lastError) throw err
  }
  const reason = lastError?.message ?? 'aborted'
  const hint = /self[- ]signed|unable to verify|certificate/i.test(reason) ? ' (is its CA trusted? NODE_EXTRA_CA_CERTS)' : ''
  const timedOut = lastError?.code === 'ETIMEDOUT'
  throw new HttpError(
    timedOut ? 'HTTP_TIMEOUT' : 'HTTP_UNREACHABLE',
    `${o.what}: ${target.host} ${timedOut ? 'did not answer' : 'cannot be reached'} after ${attempts} attempt(s): ${reason}${hint}`,
    { cause: lastError },
  )
}
