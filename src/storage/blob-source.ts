import type { BlobClient } from '@azure/storage-blob'
import type { TokenCredential } from '@azure/identity'
import type { Logger } from '../log/logger.js'
import { silentLogger } from '../log/logger.js'
import { checkRange, FillingSource, type WritableRangeSource } from './range-source.js'
import { StorageError } from './errors.js'
import { redactUrl } from '../log/redact.js'
import { withStorageRetry, StorageHealth, type RetryContext, type StorageRetryOptions } from './retry.js'
import type { RangeReader } from './range-request.js'
import { defaultBlobHttp, rangeReader, type BlobHttpClient } from './blob-http.js'
import { pagePut, type PagePut } from './native-page-put.js'
import { storageError } from './storage-error.js'
import { StopGate } from './stop-gate.js'
import { BlobLease, type LeaseStatus, type WritableBlobOptions } from './blob-lease.js'
import { BearerToken } from './bearer-token.js'
import { checkBlobUrl, headBlob, type BlobProperties, type BlobType } from './blob-properties.js'

export type { WritableBlobOptions } from './blob-lease.js'

export type { BlobType } from './blob-properties.js'

export interface BlobSourceOptions {
  url: string
  /** Bearer tokens for `azure_url_private`; none: anonymous or the URL's SAS. */
  credential?: TokenCredential
  logger?: Logger
  /**
   * remotefs's stop: aborts opening the blob, and later every request in flight (reads at once,
   * writes after a grace: src/storage/stop-gate.ts).
   */
  signal?: AbortSignal
  /** Attempts per request (src/storage/retry.ts). */
  maxTries?: number
  /** Per-attempt timeout (plus STORAGE_RETRY.perMiBMs per MiB moved). */
  tryTimeoutMs?: number
  /** The rest of the retry policy (docs/storage-faults.md). */
  retry?: Partial<StorageRetryOptions>
  /**
   * Read-write (page blobs only): the blob is leased while open, so a second writer is refused.
   * The lease id is kept in `leaseIdFile` so that a restart after a crash takes its lease back.
   */
  writable?: WritableBlobOptions
  /** The HTTP client of the reads (src/storage/blob-http.ts); default: env EncfsHttp, else auto. */
  http?: BlobHttpClient
}

function retryContextOf(o: BlobSourceOptions, what: string, signal?: AbortSignal, bytes?: number): RetryContext {
  return {
    what,
    signal,
    bytes,
    logger: o.logger,
    options: { ...o.retry, ...(o.maxTries !== undefined ? { maxTries: o.maxTries } : {}), ...(o.tryTimeoutMs !== undefined ? { attemptTimeoutMs: o.tryTimeoutMs } : {}) },
  }
}

/**
 * An Azure blob (block or page) read with ranged GETs. The ETag seen at open is pinned and sent
 * as If-Match on every read, so a blob replaced during a mount is a loud error, never a mix of two
 * versions. Opened writable, it is a WritableBlobSource (a leased page blob). When remotefs stops
 * (the `signal` it was opened with), its requests end within seconds (StopGate).
 */
export class BlobSource extends FillingSource {
  readonly kind = 'blob' as const

  private readonly health = new StorageHealth()
  protected readonly gate: StopGate
  readonly size: number
  readonly etag: string
  readonly blobType: BlobType

  protected constructor(
    protected readonly options: BlobSourceOptions,
    props: BlobProperties,
    private readonly getter: RangeReader,
  ) {
    super()
    this.size = props.size
    this.etag = props.etag
    this.blobType = props.blobType
    this.gate = new StopGate(options.signal, { writable: options.writable !== undefined })
  }

  protected retryContext(what: string, signal?: AbortSignal, bytes?: number): RetryContext {
    return { ...retryContextOf(this.options, what, signal, bytes), health: this.health }
  }

  static open(o: BlobSourceOptions & { writable: WritableBlobOptions }): Promise<WritableBlobSource>
  static open(o: BlobSourceOptions): Promise<BlobSource>
  static async open(o: BlobSourceOptions): Promise<BlobSource> {
    const logger = o.logger ?? silentLogger
    const http = o.http ?? defaultBlobHttp().client
    // The SDK only where it is needed: leases (read-write) and the Node.js client.
    const client = o.writable || http === 'node' ? (await import('./sdk-blob-client.js')).sdkBlobClient(o) : undefined
    if (!client) checkBlobUrl(o.url)
    if (o.writable && !o.credential) checkWriteSas(o.url)
    const props = await blobProperties(o, client)
    const { size, etag, blobType } = props
    // One attempt per call: withStorageRetry around it does the retrying (and bounds each attempt).
    const getter = await rangeReader(o.url, { credential: o.credential, maxTries: 1, tryTimeoutMs: o.tryTimeoutMs ?? 120_000 }, http)
    if (!o.writable) {
      if (etag) logger.info({ url: redactUrl(o.url), size, blobType, etag, writable: false }, 'blob opened; ETag pinned')
      else
        logger.warn(
          { url: redactUrl(o.url), size, blobType },
          'blob opened, but storage sent no ETag: nothing can be pinned, and a blob replaced while mounted will not be noticed',
        )
      return new BlobSource(o, props, getter)
    }
    if (blobType !== 'PageBlob') {
      throw new StorageError(
        'STORAGE_NEEDS_PAGE_BLOB',
        `read_write needs a page blob, but ${redactUrl(o.url)} is a ${blobType}: upload the image as a page blob (az storage blob upload --type page), or mount it read-only`,
      )
    }
    const lease = await BlobLease.acquire(client!, o, o.writable, { ...retryContextOf(o, 'leasing the blob for writing', o.signal), logger })
    logger.info({ url: redactUrl(o.url), size, blobType, etag, writable: true }, 'blob opened read-write; lease held')
    return new WritableBlobSource(client!, o, props, getter, lease)
  }

  protected async fill(offset: number, buf: Buffer, signal?: AbortSignal): Promise<void> {
    const length = buf.length
    const what = `reading ${length} bytes at ${offset}`
    let gated: { signal: AbortSignal; unlink(): void } | undefined
    try {
      this.checkUsable()
      const conditions = this.readConditions()
      gated = this.gate.forRead(signal)
      // One ranged GET per call (the block cache above decides sizes and parallelism). Retries are
      // withStorageRetry's (429 and Retry-After included); a body that breaks off part-way is
      // resumed inside the attempt.
      await withStorageRetry(this.retryContext(what, gated.signal, length), (abortSignal) => this.getter.readInto(offset, buf, { signal: abortSignal, ...conditions }))
    } catch (err) {
      throw this.failed(err, what)
    } finally {
      gated?.unlink()
    }
  }

  /**
   * What a read is conditioned on: the pinned ETag (If-Match), so that a replaced blob answers 412;
   * a leased blob, whose changes are all ours, sends the lease id instead.
   */
  protected readConditions(): { etag?: string; leaseId?: string } {
    return this.etag ? { etag: this.etag } : {}
  }

  /** Throws when no request may go to storage any more (a writable blob whose lease is lost). */
  protected checkUsable(): void {}

  /** A request's failure as the StorageError to throw (a writable blob also learns from it whether its lease is lost). */
  protected failed(err: unknown, what: string): StorageError {
    const e = storageError(err, this.options, what)
    return e.code === 'STORAGE_ABORTED' && this.gate.stopping && !(err instanceof StorageError)
      ? new StorageError('STORAGE_ABORTED', `${what}: aborted, remotefs is stopping`, { cause: err })
      : e
  }

  async close(): Promise<void> {
    this.gate.close()
  }
}

/**
 * A page blob opened read-write: leased while open (a second writer is refused; a lost lease
 * fences every request, see BlobLease), the lease renewed in the background and released at
 * close. Writes are Put Page, idempotent and durable once acknowledged.
 */
export class WritableBlobSource extends BlobSource implements WritableRangeSource {
  private readonly pages: PagePut
  /** Present when the Put Page client gathers (libcurl): a cache writes back several ranges uncopied. */
  readonly writeParts?: (offset: number, parts: readonly Buffer[]) => Promise<void>

  constructor(
    client: BlobClient,
    options: BlobSourceOptions,
    props: BlobProperties,
    getter: RangeReader,
    private readonly lease: BlobLease,
  ) {
    super(options, props, getter)
    // Put Page on the same HTTP client as the reads (libcurl when it loads, else the SDK).
    this.pages = pagePut(
      options.url,
      { credential: options.credential, tryTimeoutMs: options.tryTimeoutMs ?? 120_000 },
      options.http ?? defaultBlobHttp().client,
      client.getPageBlobClient(),
    )
    const gather = this.pages.putParts?.bind(this.pages)
    if (gather) {
      this.writeParts = (offset, parts) =>
        this.put(
          offset,
          parts.reduce((n, p) => n + p.length, 0),
          (signal) => gather(offset, parts, { leaseId: lease.id, signal }),
        )
    }
  }

  /** Reads prove the lease is still ours: another writer's bytes are refused (412), never served. */
  protected override readConditions(): { etag?: string; leaseId?: string } {
    return { leaseId: this.lease.id }
  }

  protected override checkUsable(): void {
    this.lease.check()
  }

  protected override failed(err: unknown, what: string): StorageError {
    return this.lease.noteFailure(super.failed(err, what))
  }

  /** Whether the lease is held, for /status. */
  leaseStatus(): LeaseStatus {
    return this.lease.status()
  }

  write(offset: number, data: Buffer): Promise<void> {
    return this.put(offset, data.length, (signal) => this.pages.putPages(offset, data, { leaseId: this.lease.id, signal }))
  }

  private async put(offset: number, length: number, send: (signal: AbortSignal) => Promise<void>): Promise<void> {
    checkRange(this.size, offset, length)
    const what = `writing ${length} bytes at ${offset}`
    let gated: { signal: AbortSignal; unlink(): void } | undefined
    try {
      this.checkUsable()
      gated = this.gate.forWrite()
      // Put Page is idempotent: retrying a write whose answer was lost writes the same bytes again.
      await withStorageRetry(this.retryContext(what, gated.signal, length), send)
    } catch (err) {
      throw this.failed(err, what)
    } finally {
      gated?.unlink()
    }
  }

  /** An acknowledged Put Page is durable: nothing is buffered here. */
  async flush(): Promise<void> {}

  override async close(): Promise<void> {
    await super.close()
    await this.lease.release()
  }
}

/** The blob's size, ETag and type: a HEAD on Node's own client, or the SDK's getProperties where the SDK is loaded anyway. */
async function blobProperties(o: BlobSourceOptions, client: BlobClient | undefined): Promise<BlobProperties> {
  const token = !client && o.credential ? new BearerToken(o.credential) : undefined
  try {
    return await withStorageRetry(retryContextOf(o, 'opening the image', o.signal), async (abortSignal) => {
      if (!client) {
        const authorization = token ? await token.headerFor(o.url) : undefined
        return headBlob(o.url, { signal: abortSignal, timeoutMs: o.tryTimeoutMs ?? 120_000, ...(authorization ? { authorization } : {}) })
      }
      const p = await client.getProperties({ abortSignal })
      return { size: p.contentLength ?? 0, etag: p.etag ?? '', blobType: (p.blobType ?? 'BlockBlob') as BlobType }
    })
  } catch (err) {
    throw storageError(err, o, 'opening the image')
  }
}

/** Without a credential, writing takes a SAS that grants it: said at open, not at the first write. */
function checkWriteSas(url: string): void {
  const sas = new URL(url).searchParams
  if (!sas.has('sig'))
    throw new StorageError(
      'STORAGE_WRITE_NEEDS_CREDENTIAL',
      `read_write needs a credential that may write ${redactUrl(url)}: an anonymous public URL cannot; use a SAS URL with write permission (sp=rw), or azure_url_private: true with an identity that has Storage Blob Data Contributor`,
    )
  if (!(sas.get('sp') ?? '').includes('w'))
    throw new StorageError(
      'STORAGE_WRITE_NEEDS_CREDENTIAL',
      `read_write needs write permission, but the SAS of ${redactUrl(url)} grants sp=${sas.get('sp') ?? ''}; make a SAS with sp=rw`,
    )
}
