import { EncfsError } from '../errors/encfs-error.js'
import { CurlClient } from '../http/curl-client.js'
import { loadProblem } from '../process/load-addon.js'
import { NativeRangedGet } from './native-ranged-get.js'
import type { RangedGetOptions, RangeReader } from './range-request.js'

/**
 * Which HTTP client moves blob bytes: `native`, libcurl on its own thread (native/http, see
 * docs/data-path.md "The HTTP client"), or `node`, the SDK's pipeline on the main thread
 * (RangedGet). On libcurl a read-only blob never loads the SDK (its properties are a HEAD by
 * Node's own client, blob-properties.ts); leases, and everything on the Node.js client, use it.
 */
export type BlobHttpClient = 'native' | 'node'
export type BlobHttpMode = 'auto' | BlobHttpClient
export const BLOB_HTTP_MODES: readonly BlobHttpMode[] = ['auto', 'native', 'node']

export interface BlobHttpChoice {
  client: BlobHttpClient
  reason: string
}

const nativeProblem = (): string | undefined => loadProblem(() => CurlClient.get())

/**
 * `auto` takes the libcurl fetcher when its addon loads, else the SDK's pipeline. An explicit
 * `native` that cannot load is an error that says what to install.
 */
export function chooseBlobHttp(requested: BlobHttpMode): BlobHttpChoice {
  if (requested === 'node') return { client: 'node', reason: 'requested' }
  const problem = nativeProblem()
  if (requested === 'native') {
    if (problem) throw new EncfsError('HTTP_CLIENT_UNAVAILABLE', `--http native: ${problem}. Use --http node (or auto).`)
    return { client: 'native', reason: 'requested' }
  }
  if (problem) return { client: 'node', reason: `the libcurl fetcher is not usable (${problem})` }
  const http = CurlClient.get()
  return { client: 'native', reason: `${http.curlVersion} loads: bodies are received on its own thread; trusting ${http.trust}` }
}

/** The mode of env EncfsHttp (default auto). */
export function blobHttpMode(env: NodeJS.ProcessEnv = process.env): BlobHttpMode {
  const v = env.EncfsHttp?.trim() || 'auto'
  if (!(BLOB_HTTP_MODES as readonly string[]).includes(v)) {
    throw new EncfsError('HTTP_CLIENT_UNAVAILABLE', `env EncfsHttp=${JSON.stringify(v)} is not one of ${BLOB_HTTP_MODES.join(', ')}`)
  }
  return v as BlobHttpMode
}

let byEnv: BlobHttpChoice | undefined

/** The client of callers that were not told one (env EncfsHttp, else auto), chosen once per process. */
export function defaultBlobHttp(): BlobHttpChoice {
  byEnv ??= chooseBlobHttp(blobHttpMode())
  return byEnv
}

/** The ranged reader of `url` on the given client (the SDK's pipeline is loaded only for `node`). */
export async function rangeReader(url: string, o: RangedGetOptions, client: BlobHttpClient): Promise<RangeReader> {
  if (client === 'native') return new NativeRangedGet(url, o)
  const { RangedGet } = await import('./ranged-get.js')
  return new RangedGet(url, o)
}
