import type { PageBlobClient } from '@azure/storage-blob'
import { BearerToken } from './bearer-token.js'
import { CurlClient } from '../http/curl-client.js'
import { outcomeError } from './transfer-error.js'
import { SERVICE_VERSION, checkStorageRequest, type RangedGetOptions } from './range-request.js'
import type { BlobHttpClient } from './blob-http.js'

/** Put Page (x-ms-page-write: update) of 512-aligned bytes at a 512-aligned offset, under the writer's lease. */
export interface PagePut {
  putPages(offset: number, data: Buffer, o: { leaseId: string; signal?: AbortSignal }): Promise<void>
  /** One Put Page of `parts` end to end, not joined in memory; present where the client gathers. */
  putParts?(offset: number, parts: readonly Buffer[], o: { leaseId: string; signal?: AbortSignal }): Promise<void>
}

/**
 * Put Page on the libcurl fetcher (native/http): the body goes to the socket from `data` on the
 * fetcher's thread, so the main thread neither writes the socket nor runs the SDK's pipeline per
 * request (measured in docs/data-path.md "The write path"). The same request as the SDK's
 * uploadPages: comp=page, x-ms-range, x-ms-lease-id. Retries belong to the caller
 * (withStorageRetry), as for the SDK path created with maxTries 1.
 */
export class NativePagePut implements PagePut {
  private readonly http = CurlClient.get()
  private readonly token?: BearerToken
  private readonly url: string

  constructor(
    url: string,
    private readonly o: Omit<RangedGetOptions, 'maxTries' | 'resumeTries'> = {},
  ) {
    const u = new URL(url)
    u.searchParams.set('comp', 'page')
    this.url = u.toString()
    if (o.credential) this.token = new BearerToken(o.credential)
  }

  putPages(offset: number, data: Buffer, o: { leaseId: string; signal?: AbortSignal }): Promise<void> {
    return this.putParts(offset, [data], o)
  }

  /** The parts go to the socket one after the other from the transfer thread: no copy to join them. */
  async putParts(offset: number, parts: readonly Buffer[], o: { leaseId: string; signal?: AbortSignal }): Promise<void> {
    const length = parts.reduce((n, p) => n + p.length, 0)
    // (The addon drops libcurl's "Expect: 100-continue", a round trip before every body over 1 MiB.)
    const headers = [`x-ms-version: ${SERVICE_VERSION}`, 'x-ms-page-write: update', `x-ms-range: bytes=${offset}-${offset + length - 1}`, `x-ms-lease-id: ${o.leaseId}`]
    if (this.token) headers.push(await this.token.headerFor(this.url))
    checkStorageRequest(this.url, headers)
    const got = await this.http.send({
      method: 'PUT',
      url: this.url,
      headers,
      buffer: parts.length === 1 ? parts[0]! : parts,
      timeoutMs: this.o.tryTimeoutMs ?? 120_000,
      signal: o.signal,
    })
    if (got.curlCode !== 0 || got.status !== 201) throw outcomeError(got, 'PUT', this.url)
  }
}

/** The SDK's uploadPages (core-rest-pipeline on the main thread): the fallback where libcurl does not load. */
export function sdkPagePut(pages: PageBlobClient): PagePut {
  return {
    async putPages(offset, data, o) {
      checkStorageRequest(pages.url, [`x-ms-lease-id: ${o.leaseId}`])
      await pages.uploadPages(data, offset, data.length, { conditions: { leaseId: o.leaseId }, abortSignal: o.signal })
    },
  }
}

/** The Put Page of the given client. */
export function pagePut(url: string, o: Omit<RangedGetOptions, 'maxTries' | 'resumeTries'>, client: BlobHttpClient, pages: PageBlobClient): PagePut {
  return client === 'native' ? new NativePagePut(url, o) : sdkPagePut(pages)
}
