import { BlobClient, RestError, AnonymousCredential } from '@azure/storage-blob'
import type { TokenCredential } from '@azure/identity'
import type { Logger } from '../log/logger.js'
import { silentLogger } from '../log/logger.js'
import { checkRange, type RangeSource } from './range-source.js'
import { StorageError, redactUrl } from './errors.js'

export type BlobType = 'BlockBlob' | 'PageBlob' | 'AppendBlob'

export interface BlobSourceOptions {
  url: string
  /** Bearer tokens for `azure_url_private`; none: anonymous or the URL's SAS. */
  credential?: TokenCredential
  logger?: Logger
  signal?: AbortSignal
  /** Attempts per request (the SDK's exponential retry policy). */
  maxTries?: number
  /** Per-attempt timeout. */
  tryTimeoutMs?: number
}

function describeAuth(o: BlobSourceOptions): string {
  if (o.credential) return 'the managed / workload identity (azure_url_private: true)'
  return new URL(o.url).searchParams.has('sig') ? 'the SAS in azure_url' : 'anonymous access (no SAS, azure_url_private: false)'
}

/** Turns SDK errors into messages that say which blob, which credential and what to check. */
export function storageError(err: unknown, o: BlobSourceOptions, what: string): StorageError {
  const url = redactUrl(o.url)
  if (err instanceof StorageError) return err
  if (err instanceof RestError) {
    const status = err.statusCode
    const code = (err as RestError & { code?: string }).code ?? ''
    if (status === 404) {
      return new StorageError('STORAGE_NOT_FOUND', `${what}: ${url} was not found (${code || 'HTTP 404'}). Check the account, container and blob names; ` +
        'a private container read without a SAS or identity also answers 404', { cause: err })
    }
    if (status === 401 || status === 403) {
      return new StorageError('STORAGE_ACCESS_DENIED', `${what}: access to ${url} was denied (HTTP ${status}${code ? ` ${code}` : ""}) using ${describeAuth(o)}. ` +
        'Check the SAS permissions and expiry, the container\'s public access level, or the identity\'s role assignment (Storage Blob Data Reader)', { cause: err })
    }
    if (status === 412) {
      return new StorageError('STORAGE_BLOB_CHANGED', `${what}: ${url} changed since it was mounted (its ETag no longer matches). ` +
        'Refusing to mix two versions of the image: restart remotefs to mount the new version', { cause: err })
    }
    if (status === 416) return new StorageError('STORAGE_SHORT_READ', `${what}: ${url} is shorter than expected (HTTP 416)`, { cause: err })
    if (status === undefined || status === 0) {
      return new StorageError('STORAGE_UNREACHABLE', `${what}: cannot reach ${new URL(o.url).host}: ${err.message}`, { cause: err })
    }
    return new StorageError('STORAGE_READ_FAILED', `${what}: ${url} answered HTTP ${status}${code ? ` ${code}` : ""}: ${err.message.split('\n')[0]}`, { cause: err })
  }
  if (err instanceof Error && err.name === 'AbortError') return new StorageError('STORAGE_ABORTED', `${what}: aborted`, { cause: err })
  const e = err as NodeJS.ErrnoException
  return new StorageError('STORAGE_UNREACHABLE', `${what}: cannot reach ${new URL(o.url).host}: ${e?.message ?? String(err)}`, { cause: err })
}

/**
 * An Azure blob (block or page) read with ranged GETs. The ETag seen at open is pinned and sent
 * as If-Match on every read, so a blob replaced during a mount is a loud error, never a mix of two
 * versions.
 */
export class BlobSource implements RangeSource {
  readonly kind = 'blob' as const

  private constructor(
    private readonly client: BlobClient,
    private readonly options: BlobSourceOptions,
    readonly size: number,
    readonly etag: string,
    readonly blobType: BlobType,
  ) {}

  static async open(o: BlobSourceOptions): Promise<BlobSource> {
    const logger = o.logger ?? silentLogger
    let client: BlobClient
    try {
      client = new BlobClient(o.url, o.credential ?? new AnonymousCredential(), {
        retryOptions: { maxTries: o.maxTries ?? 5, tryTimeoutInMs: o.tryTimeoutMs ?? 120_000, retryDelayInMs: 200, maxRetryDelayInMs: 10_000 },
        userAgentOptions: { userAgentPrefix: 'encfs' },
      })
    } catch (err) {
      throw new StorageError('STORAGE_BAD_URL', `azure_url ${redactUrl(o.url)} is not a blob URL: ${(err as Error).message}`, { cause: err })
    }
    let props
    try {
      props = await client.getProperties({ abortSignal: o.signal })
    } catch (err) {
      throw storageError(err, o, 'opening the image')
    }
    const size = props.contentLength ?? 0
    const etag = props.etag ?? ''
    const blobType = (props.blobType ?? 'BlockBlob') as BlobType
    logger.info({ url: redactUrl(o.url), size, blobType, etag }, 'blob opened; ETag pinned')
    return new BlobSource(client, o, size, etag, blobType)
  }

  async read(offset: number, length: number, signal?: AbortSignal): Promise<Buffer> {
    const buf = Buffer.allocUnsafe(length)
    await this.readInto(offset, buf, signal)
    return buf
  }

  async readInto(offset: number, buf: Buffer, signal?: AbortSignal): Promise<void> {
    const length = buf.length
    checkRange(this.size, offset, length)
    if (length === 0) return
    try {
      // One ranged GET per call (the block cache above decides sizes and parallelism), If-Match
      // the pinned ETag. The body is copied chunk by chunk: the SDK's downloadToBuffer fills with
      // Buffer.fill, which cost a third of remotefs's CPU in bench/read-throughput.ts.
      const res = await this.client.download(offset, length, {
        abortSignal: signal ?? this.options.signal,
        conditions: this.etag ? { ifMatch: this.etag } : {},
        maxRetryRequests: 3,
      })
      const body = res.readableStreamBody
      if (!body) throw new Error('the response has no body')
      let pos = 0
      for await (const chunk of body as AsyncIterable<Buffer>) {
        if (pos + chunk.length > length) throw new Error(`the server sent more than the ${length} bytes asked for`)
        chunk.copy(buf, pos)
        pos += chunk.length
      }
      if (pos !== length) throw new Error(`the download ended after ${pos} of ${length} bytes`)
    } catch (err) {
      throw storageError(err, this.options, `reading ${length} bytes at ${offset}`)
    }
  }

  async close(): Promise<void> {}
}
