import { addonLoader } from '../process/load-addon.js'

/**
 * A transfer ended: `code` is libcurl's result (0: the exchange completed) or one of the addon's
 * failures (cancelled, overflow: more body than the Buffer holds, mismatch: a 2xx answer that is
 * not the range asked for, setup: libcurl refused an option), the HTTP status (0: none), the body
 * bytes written into (GET) or sent from (PUT) the Buffer, a message, and the raw response headers
 * when the transfer failed or the status is not 2xx.
 */
export type CurlDoneHandler = (id: number, code: number, status: number, bytes: number, message: string | undefined, headers: string | undefined) => void

/** The addon's own outcome codes, negative so that they never collide with libcurl's. */
export interface CurlFailures {
  cancelled: number
  overflow: number
  mismatch: number
  setup: number
}

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
  /**
   * Starts a GET of the blob's bytes [first, first + target.length) into `target`: only a 206 for
   * exactly that range (or a 200 when it is the whole blob) is written, anything else ends the
   * transfer (mismatch) and its connection. The id names it in `cancel` and in the completion.
   */
  get(url: string, headers: string[], target: Buffer, timeoutMs: number, first: number): number
  /** Starts a PUT sending `body` (an array: its Buffers end to end, gathered on the transfer thread). */
  put(url: string, headers: string[], body: Buffer | readonly Buffer[], timeoutMs: number): number
  /** Ends a transfer early; its completion follows (cancelled), after which its Buffer is free again. */
  cancel(id: number): void
  /** Cancels everything and ends the transfer thread. */
  close(): void
  stats(): { inFlight: number; started: number }
}

export interface CurlAddon {
  Fetcher: new (options: CurlFetcherOptions, onDone: CurlDoneHandler) => CurlFetcher
  curlVersion(): string
  defaultCaInfo(): string | undefined
  failures: Readonly<CurlFailures>
}

/** The libcurl fetcher built from native/http by npm run setup (needs libcurl4-openssl-dev to build, libcurl4 to run). */
export const loadCurlAddon = addonLoader<CurlAddon>({
  file: '../../../native/http/build/Release/encfs_http.node',
  code: 'HTTP_ADDON_MISSING',
  notBuilt: 'the libcurl fetcher addon is not built (npm run setup builds it when libcurl4-openssl-dev is installed)',
  notLoading: "the libcurl fetcher addon does not load (it needs Debian's libcurl4)",
})
