import { existsSync, readFileSync, realpathSync } from 'node:fs'
import { rootCertificates } from 'node:tls'
import { loadCurlAddon, type CurlFailures, type CurlFetcher } from './curl-addon.js'
import { HttpError } from './errors.js'
import { headerProblem, urlProblem } from './request-checks.js'

/** How a native transfer ended, as the addon reports it (see curl-addon.ts). */
export interface CurlOutcome {
  /** libcurl's result; 0 also when the addon ended it itself (see `failure`). */
  curlCode: number
  /** The addon ended it: more body than asked for, or an answer that is not the range asked for (the connection is dropped). */
  failure?: 'overflow' | 'mismatch' | 'setup'
  status: number
  /** Body bytes written into (GET) or sent from (PUT) the Buffer. */
  bytes: number
  message?: string
  /** Raw response headers, present when the transfer failed or the status is not 2xx. */
  headers?: string
}

export interface CurlRequest {
  method: 'GET' | 'PUT'
  url: string
  headers: string[]
  /** GET: the body is written here; PUT: the body sent (an array: its Buffers end to end). Untouched by the caller until the promise settles. */
  buffer: Buffer | readonly Buffer[]
  timeoutMs: number
  signal?: AbortSignal
  /** GET: the blob offset of buffer[0]; the answer must be exactly those bytes. */
  first?: number
}

/** The trust libcurl is given: undefined keeps its own (the system bundle, cached between connections). */
export function curlTrust(defaultCaInfo: string | undefined, env: NodeJS.ProcessEnv = process.env): { caPem?: Buffer; source: string } {
  const system = defaultCaInfo && existsSync(defaultCaInfo) ? defaultCaInfo : undefined
  const extra = env.NODE_EXTRA_CA_CERTS
  // Some images point NODE_EXTRA_CA_CERTS at the system bundle itself: nothing to add then.
  if (system && (!extra || sameFile(extra, system))) return { source: system }
  // CURLOPT_CAINFO_BLOB replaces the bundle file, so the bundle goes into the blob too.
  const base = system ? readFileSync(system, 'utf8') : rootCertificates.join('\n')
  let added = ''
  if (extra) {
    try {
      added = readFileSync(extra, 'utf8')
    } catch {
      // Node warns about an unreadable NODE_EXTRA_CA_CERTS and goes on without it; so does this.
    }
  }
  return { caPem: Buffer.from(`${base}\n${added}\n`), source: `${system ?? "Node.js's bundled roots"}${added ? ` + ${extra}` : ''}` }
}

function sameFile(a: string, b: string): boolean {
  try {
    return realpathSync(a) === realpathSync(b)
  } catch {
    return false
  }
}

const CONNECTIONS_PER_HOST = 16

/**
 * The process's one libcurl fetcher (one connection pool, one transfer thread) and the promises
 * of its transfers. A transfer's promise settles only when the addon has let go of its Buffer,
 * also after an abort, so that a buffer handed back to a pool is never written into again.
 */
export class CurlClient {
  private static shared?: CurlClient

  /** The process-wide instance; throws an EncfsError (HTTP_ADDON_MISSING) when the addon does not load. */
  static get(): CurlClient {
    CurlClient.shared ??= new CurlClient()
    return CurlClient.shared
  }

  readonly curlVersion: string
  readonly trust: string
  private readonly fetcher: CurlFetcher
  private readonly failures: Readonly<CurlFailures>
  private readonly pending = new Map<number, (o: CurlOutcome | 'cancelled') => void>()

  private constructor() {
    const addon = loadCurlAddon()
    const trust = curlTrust(addon.defaultCaInfo())
    this.curlVersion = addon.curlVersion().split(' ')[0] ?? 'libcurl'
    this.trust = trust.source
    this.failures = addon.failures
    this.fetcher = new addon.Fetcher(
      { maxHostConnections: CONNECTIONS_PER_HOST, userAgent: `encfs ${this.curlVersion}`, ...(trust.caPem ? { caPem: trust.caPem } : {}) },
      (id, code, status, bytes, message, headers) => {
        const settle = this.pending.get(id)
        this.pending.delete(id)
        settle?.(this.outcome(code, status, bytes, message, headers))
      },
    )
  }

  /**
   * One exchange. Resolves with how it ended (HTTP errors included); rejects when `signal` aborts
   * it, and with an HttpError, before anything is sent, when the URL or a header is refused
   * (HTTP_URL_REFUSED, HTTP_HEADER_INVALID).
   */
  async send(r: CurlRequest): Promise<CurlOutcome> {
    checkRequest(r)
    if (r.signal?.aborted) throw abortError()
    const id = r.method === 'GET' ? this.fetcher.get(r.url, r.headers, getTarget(r.buffer), r.timeoutMs, r.first ?? 0) : this.fetcher.put(r.url, r.headers, r.buffer, r.timeoutMs)
    const onAbort = (): void => this.fetcher.cancel(id)
    r.signal?.addEventListener('abort', onAbort, { once: true })
    try {
      const outcome = await new Promise<CurlOutcome | 'cancelled'>((resolve) => this.pending.set(id, resolve))
      if (outcome === 'cancelled') throw abortError()
      return outcome
    } finally {
      r.signal?.removeEventListener('abort', onAbort)
    }
  }

  private outcome(code: number, status: number, bytes: number, message?: string, headers?: string): CurlOutcome | 'cancelled' {
    const f = this.failures
    if (code === f.cancelled) return 'cancelled'
    const failure = code === f.overflow ? 'overflow' : code === f.mismatch ? 'mismatch' : code === f.setup ? 'setup' : undefined
    return {
      // An addon failure is not libcurl's code: the exchange did not complete.
      curlCode: failure ? CURLE_ABORTED_BY_CALLBACK : code,
      status,
      bytes,
      ...(failure ? { failure } : {}),
      ...(message !== undefined ? { message } : {}),
      ...(headers !== undefined ? { headers } : {}),
    }
  }

  stats(): { inFlight: number; started: number } {
    return this.fetcher.stats()
  }
}

/** libcurl's CURLE_ABORTED_BY_CALLBACK: what a transfer the addon ended counts as. */
const CURLE_ABORTED_BY_CALLBACK = 42

/** The URL and every header, refused with an HttpError before the addon (which checks them again) sees them. */
function checkRequest(r: CurlRequest): void {
  const url = urlProblem(r.url)
  if (url) throw new HttpError('HTTP_URL_REFUSED', `refusing to ${r.method} ${JSON.stringify(r.url.split('?')[0])}: ${url}`)
  for (const h of r.headers) {
    const problem = headerProblem(h)
    if (problem) throw new HttpError('HTTP_HEADER_INVALID', `refusing to ${r.method} ${JSON.stringify(r.url.split('?')[0])}: ${problem}`)
  }
}

function getTarget(b: Buffer | readonly Buffer[]): Buffer {
  if (!Buffer.isBuffer(b)) throw new TypeError('a GET is received into one Buffer')
  return b
}

function abortError(): Error {
  const err = new Error('The operation was aborted.')
  err.name = 'AbortError'
  return err
}
