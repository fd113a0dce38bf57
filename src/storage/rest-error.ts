/**
 * A blob service answer that is an error, or a request that got none, as both blob clients report
 * it: the SDK throws its RestError; the libcurl path and the properties HEAD (which do without the
 * SDK, so that a mount on libcurl never loads it) throw BlobHttpError, shaped and named alike, so
 * that storageError() and the retry classifier (retry.ts) read both the same way.
 */
export interface RestLike extends Error {
  statusCode?: number
  code?: string
  response?: { headers: { get(name: string): string | undefined } }
}

export function isRestLike(err: unknown): err is RestLike {
  return err instanceof Error && err.name === 'RestError'
}

/** An answer's headers by lower-cased name, read as the SDK's HttpHeaders are. */
export class AnswerHeaders {
  private readonly map = new Map<string, string>()

  /** From a raw header block (`Name: value` lines). */
  static parse(raw: string | undefined): AnswerHeaders {
    const h = new AnswerHeaders()
    for (const line of (raw ?? '').split('\r\n')) {
      const colon = line.indexOf(':')
      if (colon > 0) h.map.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim())
    }
    return h
  }

  /** From Node's IncomingHttpHeaders. */
  static of(headers: Record<string, string | string[] | undefined>): AnswerHeaders {
    const h = new AnswerHeaders()
    for (const [k, v] of Object.entries(headers)) if (v !== undefined) h.map.set(k.toLowerCase(), Array.isArray(v) ? v.join(', ') : v)
    return h
  }

  get(name: string): string | undefined {
    return this.map.get(name.toLowerCase())
  }
}

export class BlobHttpError extends Error implements RestLike {
  override readonly name = 'RestError'
  readonly statusCode?: number
  readonly code?: string
  readonly response?: { status: number; headers: AnswerHeaders }
  /** The method and the URL without its SAS. */
  readonly request: { method: string; url: string }

  constructor(message: string, o: { statusCode?: number; code?: string; headers?: AnswerHeaders; request: { method: string; url: string } }) {
    super(message)
    if (o.statusCode !== undefined) this.statusCode = o.statusCode
    if (o.code !== undefined) this.code = o.code
    if (o.statusCode !== undefined && o.headers) this.response = { status: o.statusCode, headers: o.headers }
    this.request = o.request
  }
}
