import {
  RestError,
  bearerTokenAuthenticationPolicy,
  createDefaultHttpClient,
  createEmptyPipeline,
  createHttpHeaders,
  createPipelineRequest,
  defaultRetryPolicy,
  userAgentPolicy,
  type HttpClient,
  type Pipeline,
} from '@azure/core-rest-pipeline'
import type { Readable } from 'node:stream'
import { STORAGE_SCOPE } from './bearer-token.js'
import { answerProblem, checkStorageRequest, SERVICE_VERSION, UnaskedBytesError, type RangedGetOptions, type RangeReader, type ReadConditions } from './range-request.js'

/**
 * Blob reads as single ranged GETs sent straight through the SDK's own HTTP pipeline
 * (core-rest-pipeline: keep-alive agent, retry policy, bearer tokens) without the generated
 * client around it. Measured in bench/ and docs/data-path.md: per 4 KiB read it halves the
 * client CPU and cuts a third of the latency of BlobClient.download(); for 8 MiB reads both are
 * bound by the socket. The body is copied once, chunk by chunk, into the caller's buffer.
 */
export class RangedGet implements RangeReader {
  private readonly pipeline: Pipeline
  private readonly http: HttpClient

  constructor(
    private readonly url: string,
    private readonly o: RangedGetOptions = {},
  ) {
    checkStorageRequest(url, [])
    this.pipeline = createEmptyPipeline()
    this.pipeline.addPolicy(userAgentPolicy({ userAgentPrefix: 'encfs' }))
    this.pipeline.addPolicy(defaultRetryPolicy({ maxRetries: Math.max(0, (o.maxTries ?? 5) - 1), retryDelayInMs: 200, maxRetryDelayInMs: 10_000 }), { phase: 'Retry' })
    if (o.credential) this.pipeline.addPolicy(bearerTokenAuthenticationPolicy({ credential: o.credential, scopes: STORAGE_SCOPE }), { phase: 'Sign' })
    this.http = createDefaultHttpClient()
  }

  /** Fills `target` with the blob's bytes at `offset`; If-Match `etag` when given (412 when the blob changed). */
  async readInto(offset: number, target: Buffer, o: ReadConditions = {}): Promise<void> {
    let pos = 0
    for (let attempt = 0; ; attempt++) {
      try {
        pos = await this.fetch(offset, target, pos, o)
        return
      } catch (err) {
        // Only a body cut off part-way is resumed here; the pipeline has retried everything else.
        if (!(err instanceof BodyCutOff) || attempt >= (this.o.resumeTries ?? 3) || o.signal?.aborted) throw err instanceof BodyCutOff ? err.cause : err
        pos = err.received
      }
    }
  }

  private async fetch(offset: number, target: Buffer, from: number, o: ReadConditions): Promise<number> {
    const first = offset + from
    const last = offset + target.length - 1
    checkStorageRequest(this.url, [...(o.etag ? [`If-Match: ${o.etag}`] : []), ...(o.leaseId ? [`x-ms-lease-id: ${o.leaseId}`] : [])])
    const headers = createHttpHeaders({ 'x-ms-version': SERVICE_VERSION, 'x-ms-range': `bytes=${first}-${last}` })
    if (o.etag) headers.set('If-Match', o.etag)
    if (o.leaseId) headers.set('x-ms-lease-id', o.leaseId)
    const req = createPipelineRequest({
      url: this.url,
      method: 'GET',
      headers,
      abortSignal: o.signal,
      timeout: this.o.tryTimeoutMs ?? 120_000,
      allowInsecureConnection: this.url.startsWith('http:'),
      streamResponseStatusCodes: new Set([200, 206]),
    })
    const res = await this.pipeline.sendRequest(this.http, req)
    if (res.status !== 206 && res.status !== 200) {
      const code = res.headers.get('x-ms-error-code') ?? undefined
      throw new RestError(`the blob service answered ${res.status}${code ? ` ${code}` : ''}`, { statusCode: res.status, ...(code ? { code } : {}), request: req, response: res })
    }
    const body = res.readableStreamBody as Readable | undefined
    const problem = answerProblem(res.status, res.headers.get('content-range'), res.headers.get('content-length'), first, target.length - from)
    if (problem) {
      // Destroying the body destroys its socket: whatever else it carries is never read.
      body?.destroy()
      throw new UnaskedBytesError(`${problem}; the connection is dropped`)
    }
    const answered = res.headers.get('etag')
    if (o.etag && answered && answered !== o.etag) {
      // A server that ignored If-Match: these bytes are another version's.
      body?.destroy()
      throw new RestError(`the blob service answered a read pinned to ETag ${o.etag} with ETag ${answered}`, { statusCode: 412, code: 'ETagMismatch', request: req, response: res })
    }
    if (!body) throw new Error('the response has no body')
    let pos = from
    let overflow: Error | undefined
    try {
      await new Promise<void>((resolve, reject) => {
        body.on('data', (chunk: Buffer) => {
          if (pos + chunk.length > target.length) {
            body.destroy()
            overflow = new UnaskedBytesError(`the server sent more than the ${target.length - from} bytes asked for`)
            reject(overflow)
            return
          }
          chunk.copy(target, pos)
          pos += chunk.length
        })
        body.once('end', resolve)
        body.once('error', reject)
      })
    } catch (err) {
      if (o.signal?.aborted || overflow) throw err
      throw new BodyCutOff(pos, err)
    }
    if (pos !== target.length) throw new BodyCutOff(pos, new Error(`the download ended after ${pos} of ${target.length} bytes`))
    return pos
  }
}

class BodyCutOff extends Error {
  constructor(
    readonly received: number,
    override readonly cause: unknown,
  ) {
    super('the response body broke off')
  }
}
