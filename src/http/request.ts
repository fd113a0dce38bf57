import { request as httpsRequest } from 'node:https'
import { request as httpRequest } from 'node:http'
import { rootCertificates } from 'node:tls'
import { setTimeout as sleep } from 'node:timers/promises'
import { silentLogger, type Logger } from '../log/logger.js'
import { HttpError } from './errors.js'

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
  /** Pause before retry n (1-based) instead of exponential backoff with jitter. */
  retryDelayMs?: (retry: number) => number
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
      // Node reads NODE_EXTRA_CA_CERTS into its default store; `ca` replaces that store, so keep the roots.
      ...(secure && o.ca?.length ? { ca: [...rootCertificates, ...o.ca] } : {}),
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
    req.on('timeout', () => req.destroy(new Error(`no answer within ${opts.timeout} ms`)))
    req.on('error', reject)
    req.end(o.body)
  })
}

/** One HTTP exchange with retries; a non-2xx final answer is returned, not thrown. */
export async function request(url: string, o: RequestOptions): Promise<Response> {
  const logger = o.logger ?? silentLogger
  const attempts = o.attempts ?? 1
  const target = new URL(url)
  let lastError: Error | undefined
  for (let attempt = 1; attempt <= attempts; attempt++) {
    if (attempt > 1) {
      const delay = (o.baseDelayMs ?? 500) * 2 ** (attempt - 2)
      await sleep(o.retryDelayMs ? o.retryDelayMs(attempt - 1) : delay / 2 + Math.random() * delay, undefined, { signal: o.signal })
    }
    try {
      const res = await once(target, o)
      if ((res.status === 408 || res.status === 429 || res.status >= 500) && attempt < attempts) {
        logger.warn({ host: target.host, status: res.status, attempt, attempts }, `${o.what}: HTTP ${res.status}; retrying`)
        continue
      }
      return res
    } catch (err) {
      lastError = err as Error
      if (o.signal?.aborted) break
      logger.warn({ host: target.host, attempt, attempts, reason: lastError.message }, `${o.what}: ${lastError.message}${attempt < attempts ? '; retrying' : ''}`)
    }
  }
  const reason = lastError?.message ?? 'aborted'
  const hint = /self[- ]signed|unable to verify|certificate/i.test(reason) ? ' (is its CA trusted? NODE_EXTRA_CA_CERTS)' : ''
  throw new HttpError('HTTP_UNREACHABLE', `${o.what}: ${target.host} cannot be reached after ${attempts} attempt(s): ${reason}${hint}`, undefined, undefined, { cause: lastError })
}
