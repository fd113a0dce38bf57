import { request as httpsRequest } from 'node:https'
import { request as httpRequest } from 'node:http'
import { setTimeout as sleep } from 'node:timers/promises'
import { silentLogger, type Logger } from '../log/logger.js'
import { HttpError } from './errors.js'
import { defaultCaPems } from './trust-store.js'

export interface RequestOptions {
  method?: 'GET' | 'POST' | 'PUT'
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
 * told the same do not come back at the same instant), else exponential backoff with full jitter.
 * Transport failures throw HTTP_TIMEOUT (no answer in time) or HTTP_UNREACHABLE.
 */
export async function request(url: string, o: RequestOptions): Promise<Response> {
  const logger = o.logger ?? silentLogger
  const attempts = o.attempts ?? 1
  const maxRetryAfter = o.maxRetryAfterMs ?? 30_000
  const target = new URL(url)
  let lastError: (Error & { code?: string }) | undefined
  let retryAfter: number | undefined
  for (let attempt = 1; attempt <= attempts; attempt++) {
    if (attempt > 1) {
      const base = Math.min(o.maxDelayMs ?? 10_000, (o.baseDelayMs ?? 500) * 2 ** (attempt - 2))
      const backoff = o.retryDelayMs ? o.retryDelayMs(attempt - 1) : base / 2 + Math.random() * base
      const delay = retryAfter !== undefined ? Math.max(retryAfter + Math.random() * Math.min(1000, retryAfter / 4 + 100), o.retryDelayMs ? backoff : 0) : backoff
      logger.debug({ host: target.host, attempt, delayMs: Math.round(delay), ...(retryAfter !== undefined ? { retryAfterMs: retryAfter } : {}) }, `${o.what}: waiting ${Math.round(delay)} ms before attempt ${attempt}`)
      await sleep(delay, undefined, { signal: o.signal })
    }
    retryAfter = undefined
    try {
      const res = await once(target, o)
      if (RETRIED(res.status) && attempt < attempts) {
        retryAfter = retryAfterMs(res.headers['retry-after'])
        if (retryAfter !== undefined && retryAfter > maxRetryAfter) {
          logger.warn({ host: target.host, status: res.status, retryAfterMs: retryAfter }, `${o.what}: HTTP ${res.status} asking to retry after ${Math.round(retryAfter / 1000)} s, longer than ${maxRetryAfter / 1000} s; giving up`)
          return res
        }
        logger.warn({ host: target.host, status: res.status, attempt, attempts, ...(retryAfter !== undefined ? { retryAfterMs: retryAfter } : {}) }, `${o.what}: HTTP ${res.status}; retrying`)
        continue
      }
      return res
    } catch (err) {
      lastError = err as Error & { code?: string }
      if (o.signal?.aborted) break
      logger.warn({ host: target.host, attempt, attempts, reason: lastError.message }, `${o.what}: ${lastError.message}${attempt < attempts ? '; retrying' : ''}`)
    }
  }
  const reason = lastError?.message ?? 'aborted'
  const hint = /self[- ]signed|unable to verify|certificate/i.test(reason) ? ' (is its CA trusted? NODE_EXTRA_CA_CERTS)' : ''
  const timedOut = lastError?.code === 'ETIMEDOUT'
  throw new HttpError(timedOut ? 'HTTP_TIMEOUT' : 'HTTP_UNREACHABLE', `${o.what}: ${target.host} ${timedOut ? 'did not answer' : 'cannot be reached'} after ${attempts} attempt(s): ${reason}${hint}`, undefined, undefined, { cause: lastError })
}
