import { BearerToken } from './bearer-token.js'
import { CurlClient } from '../http/curl-client.js'
import { outcomeError } from './transfer-error.js'
import { SERVICE_VERSION, UnaskedBytesError, checkStorageRequest, type RangedGetOptions, type RangeReader, type ReadConditions } from './range-request.js'

/**
 * RangedGet's contract on the libcurl fetcher (native/http): one ranged GET per call, If-Match the
 * pinned ETag, a body that breaks off asked for again from where it stopped, failures as the
 * SDK's RestError. The body goes from the socket into `target` on the fetcher's thread; the main
 * thread only starts the transfer and settles its promise. Measured in docs/data-path.md: a
 * quarter of the client CPU per byte of RangedGet, whose receive (a fresh Buffer per socket
 * chunk, the stream machinery, the copy into the cache) was most of remotefs's CPU.
 *
 * Retries other than resuming a body belong to the caller (withStorageRetry in BlobSource), as
 * with RangedGet created with maxTries 1.
 */
export class NativeRangedGet implements RangeReader {
  private readonly http = CurlClient.get()
  private readonly token?: BearerToken

  constructor(
    private readonly url: string,
    private readonly o: Omit<RangedGetOptions, 'maxTries'> = {},
  ) {
    if (o.credential) this.token = new BearerToken(o.credential)
  }

  /** Fills `target` with the blob's bytes at `offset`; If-Match `etag` when given (412 when the blob changed). */
  async readInto(offset: number, target: Buffer, o: ReadConditions = {}): Promise<void> {
    const headers = [`x-ms-version: ${SERVICE_VERSION}`]
    if (o.etag) headers.push(`If-Match: ${o.etag}`)
    if (o.leaseId) headers.push(`x-ms-lease-id: ${o.leaseId}`)
    if (this.token) headers.push(await this.token.headerFor(this.url))
    checkStorageRequest(this.url, headers)
    let pos = 0
    for (let attempt = 0; ; attempt++) {
      const first = offset + pos
      const last = offset + target.length - 1
      const got = await this.http.send({
        method: 'GET',
        url: this.url,
        buffer: pos === 0 ? target : target.subarray(pos),
        first,
        timeoutMs: this.o.tryTimeoutMs ?? 120_000,
        signal: o.signal,
        headers: [...headers, `x-ms-range: bytes=${first}-${last}`],
      })
      // Another range, a whole blob, more bytes than asked: nothing of it was kept, and libcurl dropped the connection.
      if (got.failure === 'mismatch') throw new UnaskedBytesError(`${got.message ?? 'the answer is not the range asked for'}; the connection is dropped`)
      if (got.failure === 'overflow') throw new UnaskedBytesError(`the server sent more than the ${target.length - pos} bytes asked for`)
      const ok = got.status === 206 || got.status === 200
      if (ok && got.curlCode === 0 && pos + got.bytes === target.length) return
      // Only a body cut off part-way is resumed here; everything else is the caller's to retry.
      const cutOff = ok && !got.failure && (got.curlCode !== 0 || got.bytes < target.length - pos)
      if (!cutOff) throw outcomeError(got, 'GET', this.url)
      pos += got.bytes
      if (attempt >= (this.o.resumeTries ?? 3) || o.signal?.aborted) {
        throw got.curlCode !== 0 ? outcomeError(got, 'GET', this.url) : new Error(`the download ended after ${pos} of ${target.length} bytes`)
      }
    }
  }
}
