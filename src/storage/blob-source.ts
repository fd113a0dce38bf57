import { BlobClient, RestError, AnonymousCredential, type BlobGetPropertiesResponse, type BlobLeaseClient } from '@azure/storage-blob'
import { randomUUID } from 'node:crypto'
import { readFile, writeFile, rm } from 'node:fs/promises'
import type { TokenCredential } from '@azure/identity'
import type { Logger } from '../log/logger.js'
import { silentLogger } from '../log/logger.js'
import { checkRange, FillingSource, type WritableRangeSource } from './range-source.js'
import { StorageError } from './errors.js'
import { redactUrl } from '../log/redact.js'
import { withStorageRetry, StorageHealth, type RetryContext, type StorageRetryOptions } from './retry.js'
import { UnaskedBytesError, type RangeReader } from './ranged-get.js'
import { defaultBlobHttp, rangeReader, type BlobHttpClient } from './blob-http.js'
import { constantBackoff, retry, RETRY, STOP } from '../retry/retry.js'
import { pagePut, type PagePut } from './native-page-put.js'

export type BlobType = 'BlockBlob' | 'PageBlob' | 'AppendBlob'

export interface BlobSourceOptions {
  url: string
  /** Bearer tokens for `azure_url_private`; none: anonymous or the URL's SAS. */
  credential?: TokenCredential
  logger?: Logger
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

export interface WritableBlobOptions {
  /** Where the lease id is kept, so that a restart after a crash takes its lease back. */
  leaseIdFile: string
  leaseSeconds?: number
  /** How long a lease held by another writer is waited for (default 75 s). */
  leaseWaitMs?: number
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
      return new StorageError(
        'STORAGE_NOT_FOUND',
        `${what}: ${url} was not found (${code || 'HTTP 404'}). Check the account, container and blob names; ` +
          'a private container read without a SAS or identity also answers 404',
        { cause: err },
      )
    }
    if (status === 401 || status === 403) {
      return new StorageError(
        'STORAGE_ACCESS_DENIED',
        `${what}: access to ${url} was denied (HTTP ${status}${code ? ` ${code}` : ''}) using ${describeAuth(o)}. ` +
          "Check the SAS permissions and expiry, the container's public access level, or the identity's role assignment (Storage Blob Data Reader)",
        { cause: err },
      )
    }
    if (status === 412) {
      return new StorageError(
        'STORAGE_BLOB_CHANGED',
        `${what}: ${url} changed since it was mounted (its ETag no longer matches). Refusing to mix two versions of the image: restart remotefs to mount the new version`,
        { cause: err },
      )
    }
    if (status === 416) return new StorageError('STORAGE_SHORT_READ', `${what}: ${url} is shorter than expected (HTTP 416)`, { cause: err })
    if (status === undefined || status === 0) {
      return new StorageError('STORAGE_UNREACHABLE', `${what}: cannot reach ${new URL(o.url).host}: ${err.message}`, { cause: err })
    }
    return new StorageError('STORAGE_READ_FAILED', `${what}: ${url} answered HTTP ${status}${code ? ` ${code}` : ''}: ${err.message.split('\n')[0]}`, { cause: err })
  }
  if (err instanceof Error && err.name === 'AbortError') return new StorageError('STORAGE_ABORTED', `${what}: aborted`, { cause: err })
  if (err instanceof UnaskedBytesError) return new StorageError('STORAGE_BAD_ANSWER', `${what}: ${url}: ${err.message}`, { cause: err })
  const e = err as NodeJS.ErrnoException
  return new StorageError('STORAGE_UNREACHABLE', `${what}: cannot reach ${new URL(o.url).host}: ${e?.message ?? String(err)}`, { cause: err })
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
 * versions. Opened writable, it is a WritableBlobSource (a leased page blob).
 */
export class BlobSource extends FillingSource {
  readonly kind = 'blob' as const

  private readonly getter: RangeReader
  private readonly health = new StorageHealth()

  protected constructor(
    protected readonly client: BlobClient,
    protected readonly options: BlobSourceOptions,
    readonly size: number,
    readonly etag: string,
    readonly blobType: BlobType,
  ) {
    super()
    // One attempt per call: withStorageRetry around it does the retrying (and bounds each attempt).
    this.getter = rangeReader(options.url, { credential: options.credential, maxTries: 1, tryTimeoutMs: options.tryTimeoutMs ?? 120_000 }, options.http ?? defaultBlobHttp().client)
  }

  protected retryContext(what: string, signal?: AbortSignal, bytes?: number): RetryContext {
    return { ...retryContextOf(this.options, what, signal, bytes), health: this.health }
  }

  static open(o: BlobSourceOptions & { writable: WritableBlobOptions }): Promise<WritableBlobSource>
  static open(o: BlobSourceOptions): Promise<BlobSource>
  static async open(o: BlobSourceOptions): Promise<BlobSource> {
    const logger = o.logger ?? silentLogger
    const client = blobClient(o)
    if (o.writable && !o.credential) checkWriteSas(o.url)
    let props: BlobGetPropertiesResponse
    try {
      props = await withStorageRetry(retryContextOf(o, 'opening the image', o.signal), (abortSignal) => client.getProperties({ abortSignal }))
    } catch (err) {
      throw storageError(err, o, 'opening the image')
    }
    const size = props.contentLength ?? 0
    const etag = props.etag ?? ''
    const blobType = (props.blobType ?? 'BlockBlob') as BlobType
    if (!o.writable) {
      logger.info({ url: redactUrl(o.url), size, blobType, etag, writable: false }, 'blob opened; ETag pinned')
      return new BlobSource(client, o, size, etag, blobType)
    }
    if (blobType !== 'PageBlob') {
      throw new StorageError(
        'STORAGE_NEEDS_PAGE_BLOB',
        `read_write needs a page blob, but ${redactUrl(o.url)} is a ${blobType}: upload the image as a page blob (az storage blob upload --type page), or mount it read-only`,
      )
    }
    const lease = await acquireLease(client, o, o.writable, logger)
    logger.info({ url: redactUrl(o.url), size, blobType, etag, writable: true }, 'blob opened read-write; lease held')
    return new WritableBlobSource(client, o, size, etag, blobType, lease, o.writable)
  }

  protected async fill(offset: number, buf: Buffer, signal?: AbortSignal): Promise<void> {
    const length = buf.length
    try {
      // One ranged GET per call (the block cache above decides sizes and parallelism), If-Match
      // the pinned ETag (a leased blob is written only by us). Retries are withStorageRetry's (429
      // and Retry-After included); a body that breaks off part-way is resumed inside the attempt.
      await withStorageRetry(this.retryContext(`reading ${length} bytes at ${offset}`, signal, length), (abortSignal) =>
        this.getter.readInto(offset, buf, { signal: abortSignal, ...(this.pinnedEtag() ? { etag: this.etag } : {}) }),
      )
    } catch (err) {
      throw storageError(err, this.options, `reading ${length} bytes at ${offset}`)
    }
  }

  /** Whether reads send If-Match: not for a leased blob, whose changes are all ours. */
  protected pinnedEtag(): boolean {
    return this.etag !== ''
  }

  async close(): Promise<void> {}
}

/**
 * A page blob opened read-write: leased while open (a second writer is refused), the lease renewed
 * in the background and released at close. Writes are Put Page, idempotent and durable once
 * acknowledged.
 */
export class WritableBlobSource extends BlobSource implements WritableRangeSource {
  private readonly renewTimer: NodeJS.Timeout
  private readonly pages: PagePut
  /** Present when the Put Page client gathers (libcurl): a cache writes back several ranges uncopied. */
  readonly writeParts?: (offset: number, parts: readonly Buffer[]) => Promise<void>

  constructor(
    client: BlobClient,
    options: BlobSourceOptions,
    size: number,
    etag: string,
    blobType: BlobType,
    private readonly lease: { client: BlobLeaseClient; id: string },
    private readonly writable: WritableBlobOptions,
  ) {
    super(client, options, size, etag, blobType)
    // Put Page on the same HTTP client as the reads (libcurl when it loads, else the SDK).
    this.pages = pagePut(
      options.url,
      { credential: options.credential, tryTimeoutMs: options.tryTimeoutMs ?? 120_000 },
      options.http ?? defaultBlobHttp().client,
      client.getPageBlobClient(),
    )
    const seconds = writable.leaseSeconds ?? 60
    const gather = this.pages.putParts?.bind(this.pages)
    if (gather) {
      this.writeParts = (offset, parts) =>
        this.put(
          offset,
          parts.reduce((n, p) => n + p.length, 0),
          (signal) => gather(offset, parts, { leaseId: lease.id, signal }),
        )
    }
    this.renewTimer = setInterval(
      () => {
        lease.client
          .renewLease()
          .catch((err: unknown) =>
            (options.logger ?? silentLogger).error({ err: storageError(err, options, 'renewing the lease') }, 'cannot renew the blob lease; writes will fail if it expires'),
          )
      },
      (seconds * 1000) / 3,
    )
    this.renewTimer.unref()
  }

  protected override pinnedEtag(): boolean {
    return false
  }

  write(offset: number, data: Buffer): Promise<void> {
    return this.put(offset, data.length, (signal) => this.pages.putPages(offset, data, { leaseId: this.lease.id, signal }))
  }

  private async put(offset: number, length: number, send: (signal: AbortSignal) => Promise<void>): Promise<void> {
    checkRange(this.size, offset, length)
    try {
      // Put Page is idempotent: retrying a write whose answer was lost writes the same bytes again.
      await withStorageRetry(this.retryContext(`writing ${length} bytes at ${offset}`, undefined, length), send)
    } catch (err) {
      throw storageError(err, this.options, `writing ${length} bytes at ${offset}`)
    }
  }

  /** An acknowledged Put Page is durable: nothing is buffered here. */
  async flush(): Promise<void> {}

  override async close(): Promise<void> {
    clearInterval(this.renewTimer)
    await this.lease.client
      .releaseLease()
      .catch((err: unknown) =>
        (this.options.logger ?? silentLogger).warn({ err: storageError(err, this.options, 'releasing the lease') }, 'the blob lease could not be released; it expires by itself'),
      )
    await rm(this.writable.leaseIdFile, { force: true })
  }
}

function blobClient(o: BlobSourceOptions): BlobClient {
  try {
    return new BlobClient(o.url, o.credential ?? new AnonymousCredential(), {
      // Retries are ours (withStorageRetry): the SDK's skip 429 and Retry-After, and never time out.
      retryOptions: { maxTries: 1 },
      userAgentOptions: { userAgentPrefix: 'encfs' },
    })
  } catch (err) {
    throw new StorageError('STORAGE_BAD_URL', `azure_url ${redactUrl(o.url)} is not a blob URL: ${(err as Error).message}`, { cause: err })
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

/**
 * Leases the blob for the writer. The id is proposed from `leaseIdFile` when a previous run of
 * this remotefs left one (it crashed holding the lease), so that run's lease is taken back at
 * once; a lease held by anyone else is waited out (it expires if its holder died) up to a limit.
 */
async function acquireLease(client: BlobClient, o: BlobSourceOptions, w: WritableBlobOptions, logger: Logger): Promise<{ client: BlobLeaseClient; id: string }> {
  const stored = (await readFile(w.leaseIdFile, 'utf8').catch(() => '')).trim()
  const id = stored || randomUUID()
  if (!stored) await writeFile(w.leaseIdFile, `${id}\n`, { mode: 0o600 })
  const leaseClient = client.getBlobLeaseClient(id)
  const heldByAnother = (err: unknown) => err instanceof RestError && err.statusCode === 409
  try {
    await retry(
      () => withStorageRetry(retryContextOf(o, 'leasing the blob for writing', o.signal), (abortSignal) => leaseClient.acquireLease(w.leaseSeconds ?? 60, { abortSignal })),
      {
        budgetMs: w.leaseWaitMs ?? 75_000,
        backoff: constantBackoff(2000),
        signal: o.signal,
        classify: (err) => (heldByAnother(err) ? RETRY : STOP),
        onRetry: ({ attempt }) => {
          if (attempt === 1) logger.warn({ url: redactUrl(o.url) }, 'the blob is leased by another writer; waiting for the lease to be released or to expire')
        },
      },
    )
  } catch (err) {
    if (!heldByAnother(err)) throw storageError(err, o, 'leasing the blob for writing')
    throw new StorageError(
      'STORAGE_LEASED',
      `${redactUrl(o.url)} is leased by another writer (another remotefs mounting it read-write?); two writers would corrupt the filesystem. Stop the other one, or mount read-only`,
      { cause: err },
    )
  }
  if (stored) logger.warn({ url: redactUrl(o.url) }, 'took back the lease of an earlier run of this remotefs')
  return { client: leaseClient, id }
}
