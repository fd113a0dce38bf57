import { createRequire } from 'node:module'
import { EncfsError } from '../errors/encfs-error.js'

/**
 * A transfer ended: libcurl's result (0: the exchange completed; -1: cancelled), the HTTP status
 * (0: none), the body bytes written into (GET) or sent from (PUT) the Buffer, libcurl's message
 * (or "overflow" when the server sent more than the Buffer holds), and the raw response headers
 * when the transfer failed or the status is not 2xx.
 */
export type CurlDoneHandler = (id: number, curlCode: number, status: number, bytes: number, message: string | undefined, headers: string | undefined) => void

export interface CurlFetcherOptions {
  /** Connections kept per host (libcurl's CURLMOPT_MAX_HOST_CONNECTIONS); more transfers queue. */
  maxHostConnections?: number
  /** libcurl's receive buffer per transfer. */
  bufferSize?: number
  userAgent?: string
  /** The CA certificates to trust (PEM); default: libcurl's own bundle (the system's). */
  caPem?: Buffer
}

export interface CurlFetcher {
  /** Starts a GET whose 2xx body is written into `target`; the id names it in `cancel` and in the completion. */
  get(url: string, headers: string[], target: Buffer, timeoutMs: number): number
  /** Starts a PUT sending `body` (an array: its Buffers end to end, gathered on the transfer thread). */
  put(url: string, headers: string[], body: Buffer | readonly Buffer[], timeoutMs: number): number
  /** Ends a transfer early; its completion follows (curlCode -1), after which its Buffer is free again. */
  cancel(id: number): void
  /** Cancels everything and ends the transfer thread. */
  close(): void
  stats(): { inFlight: number; started: number }
}

export interface CurlAddon {
  Fetcher: new (options: CurlFetcherOptions, onDone: CurlDoneHandler) => CurlFetcher
  curlVersion(): string
  defaultCaInfo(): string | undefined
}

let addon: CurlAddon | undefined
let failure: EncfsError | undefined

/** The libcurl fetcher built from native/http by npm run setup (needs libcurl4-openssl-dev to build, libcurl4 to run). */
export function loadCurlAddon(): CurlAddon {
  if (addon) return addon
  if (failure) throw failure
  try {
    addon = createRequire(import.meta.url)('../../../native/http/build/Release/encfs_http.node') as CurlAddon
    return addon
  } catch (err) {
    const e = err as NodeJS.ErrnoException
    failure = new EncfsError('HTTP_ADDON_MISSING', e.code === 'MODULE_NOT_FOUND'
      ? 'the libcurl fetcher addon is not built (npm run setup builds it when libcurl4-openssl-dev is installed)'
      : `the libcurl fetcher addon does not load: ${e.message.split('\n')[0]} (it needs Debian's libcurl4)`, { cause: err })
    throw failure
  }
}
