import type { Logger } from '../log/logger.js'
import { BlobSource, type BlobType, type WritableBlobOptions } from './blob-source.js'
import type { BlobHttpClient } from './blob-http.js'
import { FileSource } from './file-source.js'
import { storageCredential } from './credential.js'
import type { IdentityConfig, IdentityRetryOptions } from '../identity/credential.js'
import { StorageError } from './errors.js'
import { redactUrl } from '../log/redact.js'
import type { RangeSource, WritableRangeSource } from './range-source.js'

export type OpenedSource = RangeSource & { kind: 'file' | 'blob'; blobType?: BlobType; etag?: string }

export interface OpenSourceOptions {
  private?: boolean
  identity?: IdentityConfig
  identityRetry?: IdentityRetryOptions
  logger?: Logger
  signal?: AbortSignal
  /** Read-write: a writable file, or a page blob leased while open (lease id kept in leaseIdFile). */
  writable?: WritableBlobOptions
  /** The HTTP client of blob reads (default: env EncfsHttp, else auto). */
  http?: BlobHttpClient
}

/** The image behind `azure_url`: a local file (file:// or absolute path) or a blob (http(s)). */
export function openSource(url: string, o: OpenSourceOptions & { writable: WritableBlobOptions }): Promise<OpenedSource & WritableRangeSource>
export function openSource(url: string, o?: OpenSourceOptions): Promise<OpenedSource>
export async function openSource(url: string, o: OpenSourceOptions = {}): Promise<OpenedSource> {
  if (url.startsWith('/') || url.startsWith('file:')) return FileSource.open(url, { writable: Boolean(o.writable) })
  if (/^https?:\/\//i.test(url)) {
    const credential = o.private ? storageCredential(o.identity, { ...o.identityRetry, logger: o.logger }) : undefined
    return BlobSource.open({ url, credential, logger: o.logger, signal: o.signal, writable: o.writable, http: o.http })
  }
  throw new StorageError('STORAGE_BAD_URL', `unsupported image location ${redactUrl(url)}: use an https:// blob URL, a file:// URL or an absolute path`)
}
