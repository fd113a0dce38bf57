import { createServer as createHttpServer, request as httpRequest, type IncomingMessage, type ServerResponse, type Server } from 'node:http'
import { createServer as createHttpsServer, request as httpsRequest } from 'node:https'
import type { AddressInfo, Socket } from 'node:net'
import type { ServerPki } from '../../src/emulators/pki.js'

/** What the proxy does to one request. */
export type Fault =
  | 'pass'
  | '429' // Too Many Requests, no Retry-After
  | '429-retry-after' // Too Many Requests, Retry-After: 1
  | '503' // Server Busy, no Retry-After
  | '503-retry-after' // Server Busy, Retry-After: 1
  | 'reset' // the connection is cut before any answer
  | 'reset-mid-body' // the answer starts, then the connection is cut
  | 'slow-body' // the answer arrives in small pieces with pauses
  | 'shifted-range' // a ranged GET answered with the range 64 KiB away, under its own Content-Range (a proxy that got it wrong)
  | '200-for-206' // a ranged GET answered 200 without Content-Range (a proxy that dropped the range)

/** The faults real storage shows (throttling, resets, slow bodies): each is survived by retrying. */
export const ALL_FAULTS: Fault[] = ['429', '429-retry-after', '503', '503-retry-after', 'reset', 'reset-mid-body', 'slow-body']
/** Answers that are not the bytes asked for: a client must refuse them, never pass them on. */
export const HOSTILE_FAULTS: Fault[] = ['shifted-range', '200-for-206']

export interface HeaderRewrite {
  request?: (headers: IncomingMessage['headers'], req: IncomingMessage) => void
  response?: (headers: IncomingMessage['headers'], req: IncomingMessage) => void
}

export interface FaultPlan {
  /** Every `every`-th request (10: 10 % of them) gets the next fault of `faults`, in turn. */
  every: number
  faults: Fault[]
  /** Only requests for which this holds are counted and faulted (default: all). */
  applies?: (req: IncomingMessage) => boolean
}

export interface FaultProxy {
  port: number
  /** `url` with its host and port replaced by the proxy's. */
  via(url: string): string
  /** host:port, for configurations that take an endpoint. */
  endpoint: string
  readonly counts: Record<Fault, number>
  readonly requests: number
  setPlan(plan: FaultPlan | undefined): void
  /** An outage: every connection is cut at once ('refuse') or answered 503 ('503') until up(). */
  down(how: 'refuse' | '503'): void
  up(): void
  /**
   * A black hole for the requests `applies` picks (default: all): read and never answered, their
   * connection left open, as a storage front end that hangs. Until unstall(); stop() cuts them.
   */
  stall(applies?: (req: IncomingMessage) => boolean): void
  /** Ends the black hole: later requests pass; those already held are cut (as a hung server's connections are, at last). */
  unstall(): void
  /** Requests held by the black hole so far, and how many of them are still waiting. */
  readonly stalled: { total: number; waiting: number }
  /**
   * A server that lies in its headers: `request` edits the headers forwarded upstream (drop
   * If-Match: a server that ignores it), `response` those answered (drop or change the ETag).
   * Undefined: headers pass as they are.
   */
  rewrite(r?: HeaderRewrite): void
  stop(): Promise<void>
}

/**
 * A reverse proxy in front of a server (Azurite, the MAA or Key Vault emulator) that injects the
 * faults real storage and services show: throttling with and without Retry-After, connection
 * resets, slow bodies, outages. Deterministic (every n-th request, faults in turn), so a failure
 * replays. With `tls`, it terminates TLS with that certificate and talks TLS to the target.
 */
export async function startFaultProxy(target: { host?: string; port: number; tls?: { pki: ServerPki; targetCa: string } }, plan?: FaultPlan): Promise<FaultProxy> {
  const counts = Object.fromEntries(['pass', ...ALL_FAULTS, ...HOSTILE_FAULTS].map((f) => [f, 0])) as Record<Fault, number>
  let current = plan
  let seen = 0
  let faulted = 0
  let outage: 'refuse' | '503' | undefined
  let blackHole: ((req: IncomingMessage) => boolean) | undefined
  let rewriting: HeaderRewrite | undefined
  const held = new Set<IncomingMessage>()
  let heldTotal = 0
  const sockets = new Set<Socket>()
  const host = target.host ?? '127.0.0.1'

  const forward = (req: IncomingMessage, res: ServerResponse, fault: Fault): void => {
    const send = target.tls ? httpsRequest : httpRequest
    const headers: IncomingMessage['headers'] = { ...req.headers, host: `${host}:${target.port}` }
    const range = /^bytes=(\d+)-(\d+)$/.exec(String(req.headers['x-ms-range'] ?? ''))
    if (fault === 'shifted-range' && range) {
      const [a, b] = [Number(range[1]), Number(range[2])]
      const by = a >= 65536 ? -65536 : 65536
      headers['x-ms-range'] = `bytes=${a + by}-${b + by}`
    }
    rewriting?.request?.(headers, req)
    const upstream = send(
      {
        host,
        port: target.port,
        method: req.method,
        path: req.url,
        headers,
        ...(target.tls ? { ca: target.tls.targetCa } : {}),
      },
      (up) => {
        const answered = { ...up.headers }
        rewriting?.response?.(answered, req)
        if (fault === '200-for-206' && up.statusCode === 206) {
          const { 'content-range': _dropped, ...rest } = answered
          res.writeHead(200, rest)
          up.pipe(res)
          return
        }
        res.writeHead(up.statusCode ?? 502, answered)
        if (fault === 'reset-mid-body') {
          let sent = 0
          up.on('data', (chunk: Buffer) => {
            if (sent > 0) {
              res.socket?.destroy()
              up.destroy()
              return
            }
            sent += chunk.length
            res.write(chunk.subarray(0, Math.max(1, Math.floor(chunk.length / 2))))
          })
          up.on('end', () => res.socket?.destroy())
          return
        }
        if (fault === 'slow-body') {
          // 16 KiB at a time, 10 ms apart: about 1.6 MB/s.
          up.on('data', (chunk: Buffer) => {
            up.pause()
            let at = 0
            const next = (): void => {
              if (at >= chunk.length) {
                up.resume()
                return
              }
              res.write(chunk.subarray(at, at + 16 * 1024))
              at += 16 * 1024
              setTimeout(next, 10)
            }
            next()
          })
          up.on('end', () => res.end())
          return
        }
        up.pipe(res)
      },
    )
    upstream.on('error', () => res.socket?.destroy())
    req.pipe(upstream)
  }

  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    if (outage === 'refuse') {
      req.socket.destroy()
      return
    }
    if (outage === '503') {
      req.resume()
      res.writeHead(503, { 'x-ms-error-code': 'ServerBusy' }).end()
      return
    }
    if (blackHole?.(req)) {
      // The body is taken (a client sending a large Put Page is not stopped by flow control), the answer never comes.
      req.resume()
      held.add(req)
      heldTotal++
      req.socket.once('close', () => held.delete(req))
      return
    }
    let fault: Fault = 'pass'
    if (current && (current.applies?.(req) ?? true)) {
      seen++
      if (seen % current.every === 0) fault = current.faults[faulted++ % current.faults.length]!
    }
    counts[fault]++
    switch (fault) {
      case '429':
      case '503':
      case '429-retry-after':
      case '503-retry-after':
        req.resume()
        res
          .writeHead(Number(fault.slice(0, 3)), {
            'x-ms-error-code': fault.startsWith('429') ? 'TooManyRequests' : 'ServerBusy',
            ...(fault.endsWith('retry-after') ? { 'retry-after': '1' } : {}),
          })
          .end()
        return
      case 'reset':
        req.socket.destroy()
        return
      default:
        forward(req, res, fault)
    }
  }

  const server: Server = target.tls ? createHttpsServer({ key: target.tls.pki.keyPem, cert: target.tls.pki.certPem }, handler) : createHttpServer(handler)
  server.on('connection', (s: Socket) => {
    if (outage === 'refuse') {
      s.destroy()
      return
    }
    sockets.add(s)
    s.on('close', () => sockets.delete(s))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as AddressInfo).port
  return {
    port,
    endpoint: `127.0.0.1:${port}`,
    via: (url) => url.replace(/^(https?:\/\/)[^/]+/, `$1127.0.0.1:${port}`),
    counts,
    get requests() {
      return Object.values(counts).reduce((a, b) => a + b, 0)
    },
    setPlan(p) {
      current = p
      seen = 0
      faulted = 0
    },
    down(how) {
      outage = how
      if (how === 'refuse') for (const s of sockets) s.destroy()
    },
    up() {
      outage = undefined
    },
    stall(applies) {
      blackHole = applies ?? (() => true)
    },
    rewrite(r) {
      rewriting = r
    },
    unstall() {
      blackHole = undefined
      for (const req of held) req.socket.destroy()
      held.clear()
    },
    get stalled() {
      return { total: heldTotal, waiting: held.size }
    },
    stop: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy()
        server.close(() => resolve())
      }),
  }
}

/**
 * Another writer taking a leased page blob over: breaks the lease at once, takes one of its own
 * and writes `bytes` at `offset` under it, as a second read-write mount (or an operator) would.
 * Returns the other writer's lease id; its lease is left for the caller to release.
 */
export async function takeOverLease(sasUrl: string, offset: number, bytes: Buffer): Promise<string> {
  const { BlobClient } = await import('@azure/storage-blob')
  const blob = new BlobClient(sasUrl)
  await blob.getBlobLeaseClient().breakLease(0)
  const lease = blob.getBlobLeaseClient()
  await lease.acquireLease(-1)
  await blob.getPageBlobClient().uploadPages(bytes, offset, bytes.length, { conditions: { leaseId: lease.leaseId } })
  return lease.leaseId
}

/** A TCP listener on 127.0.0.1 that takes connections and says nothing: where a token must never go. */
export async function startSilentListener(): Promise<{ endpoint: string; readonly connections: number; stop(): Promise<void> }> {
  const { createServer } = await import('node:net')
  let connections = 0
  const sockets = new Set<Socket>()
  const server = createServer((socket) => {
    connections++
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
    socket.resume()
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    endpoint: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    get connections() {
      return connections
    },
    stop: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy()
        server.close(() => resolve())
      }),
  }
}
