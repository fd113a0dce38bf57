import type { BlobClient, BlobLeaseClient } from '@azure/storage-blob'
import { isRestLike } from './rest-error.js'
import { randomUUID } from 'node:crypto'
import { readFile, writeFile, rm } from 'node:fs/promises'
import type { Logger } from '../log/logger.js'
import { redactUrl } from '../log/redact.js'
import { constantBackoff, retry, RETRY, STOP } from '../retry/retry.js'
import { StorageError } from './errors.js'
import { storageError, type StorageTarget } from './storage-error.js'
import { withStorageRetry, type RetryContext } from './retry.js'

export interface WritableBlobOptions {
  /** Where the lease id is kept, so that a restart after a crash takes its lease back. */
  leaseIdFile: string
  leaseSeconds?: number
  /** How long a lease held by another writer is waited for (default 75 s). */
  leaseWaitMs?: number
}

/** What /status says of a read-write filesystem's lease. */
export interface LeaseStatus {
  held: boolean
  /** When it was found lost, and why (the storage error's message). */
  lostAt?: string
  reason?: string
}

/** How long releasing the lease may take at close: storage that does not answer lets it expire by itself. */
const RELEASE_TIMEOUT_MS = 3_000

/**
 * The write lease of a page blob mounted read-write: renewed in the background, released at
 * close, and fenced once it cannot be proven held. A renewal answered with a lease error, or a
 * read or write refused for its lease id, means another writer broke or took it (or it expired
 * while storage was away): from then on every request that needs storage is refused
 * (STORAGE_LEASE_LOST, EIO to the application), so that another writer's bytes are never
 * decrypted and served, nor overwritten. Before, reads went on serving the other writer's bytes
 * without a word and the next fsync spoke of an ETag.
 */
export class BlobLease {
  private lostError?: StorageError
  private lostAt?: Date
  private readonly timer: NodeJS.Timeout

  private constructor(
    private readonly client: BlobLeaseClient,
    readonly id: string,
    private readonly target: StorageTarget,
    private readonly w: WritableBlobOptions,
    private readonly logger: Logger,
  ) {
    this.timer = setInterval(() => void this.renew(), ((w.leaseSeconds ?? 60) * 1000) / 3)
    this.timer.unref()
  }

  /**
   * Leases the blob for the writer. The id is proposed from `leaseIdFile` when a previous run of
   * this remotefs left one (it crashed holding the lease), so that run's lease is taken back at
   * once; a lease held by anyone else is waited out (it expires if its holder died) up to a limit.
   */
  static async acquire(blob: BlobClient, target: StorageTarget, w: WritableBlobOptions, ctx: RetryContext & { logger: Logger }): Promise<BlobLease> {
    const stored = (await readFile(w.leaseIdFile, 'utf8').catch(() => '')).trim()
    const id = stored || randomUUID()
    if (!stored) await writeFile(w.leaseIdFile, `${id}\n`, { mode: 0o600 })
    const client = blob.getBlobLeaseClient(id)
    const heldByAnother = (err: unknown) => isRestLike(err) && err.statusCode === 409
    try {
      await retry(() => withStorageRetry(ctx, (abortSignal) => client.acquireLease(w.leaseSeconds ?? 60, { abortSignal })), {
        budgetMs: w.leaseWaitMs ?? 75_000,
        backoff: constantBackoff(2000),
        signal: ctx.signal,
        classify: (err) => (heldByAnother(err) ? RETRY : STOP),
        onRetry: ({ attempt }) => {
          if (attempt === 1) ctx.logger.warn({ url: redactUrl(target.url) }, 'the blob is leased by another writer; waiting for the lease to be released or to expire')
        },
      })
    } catch (err) {
      if (!heldByAnother(err)) throw storageError(err, target, 'leasing the blob for writing')
      // Never ours: a later start must not take it for a lease of its own earlier run. (On any other
      // failure the id stays: a lease granted whose answer was lost is taken back at the next start.)
      if (!stored) await rm(w.leaseIdFile, { force: true })
      throw new StorageError(
        'STORAGE_LEASED',
        `${redactUrl(target.url)} is leased by another writer (another remotefs mounting it read-write?); two writers would corrupt the filesystem. Stop the other one, or mount read-only`,
        { cause: err },
      )
    }
    if (stored) ctx.logger.warn({ url: redactUrl(target.url) }, 'took back the lease of an earlier run of this remotefs')
    return new BlobLease(client, id, target, w, ctx.logger)
  }

  /** Throws the lease error once the lease is lost: nothing may be read from or written to storage any more. */
  check(): void {
    if (this.lostError) throw this.lostError
  }

  /** Notes a request's failure: a lease error fences everything after it. Returns the error to throw. */
  noteFailure(err: StorageError): StorageError {
    if (err.code === 'STORAGE_LEASE_LOST') this.fence(err)
    return err
  }

  status(): LeaseStatus {
    if (!this.lostError) return { held: true }
    return { held: false, lostAt: this.lostAt!.toISOString(), reason: this.lostError.message }
  }

  /** Stops renewing and releases the lease (within a few seconds: one that is not released expires by itself), then forgets its id. */
  async release(): Promise<void> {
    clearInterval(this.timer)
    if (!this.lostError) {
      await this.client
        .releaseLease({ abortSignal: AbortSignal.timeout(RELEASE_TIMEOUT_MS) })
        .catch((err: unknown) =>
          this.logger.warn(
            { err: storageError(err, this.target, 'releasing the lease') },
            `the blob lease could not be released; it expires by itself within ${this.w.leaseSeconds ?? 60} s`,
          ),
        )
    }
    await rm(this.w.leaseIdFile, { force: true })
  }

  private async renew(): Promise<void> {
    if (this.lostError) return
    try {
      await this.client.renewLease({ abortSignal: AbortSignal.timeout(((this.w.leaseSeconds ?? 60) * 1000) / 3) })
    } catch (err) {
      const e = storageError(err, this.target, 'renewing the lease')
      if (e.code === 'STORAGE_LEASE_LOST') this.fence(e)
      else this.logger.error({ err: e }, 'cannot renew the blob lease; writes will fail if it expires')
    }
  }

  private fence(err: StorageError): void {
    if (this.lostError) return
    this.lostError = err
    this.lostAt = new Date()
    clearInterval(this.timer)
    this.logger.error({ err, url: redactUrl(this.target.url) }, `LEASE LOST: ${err.message}`)
  }
}
