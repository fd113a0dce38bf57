import { createServer, type Server, type Socket } from 'node:net'
import type { AddressInfo } from 'node:net'

/** One request as it arrived: the request line, headers (names lower-cased), the body, and which connection brought it. */
export interface RawRequest {
  /** 1, 2, ... over the whole server. */
  n: number
  /** 1, 2, ... for the connection it came on. */
  connection: number
  method: string
  path: string
  headers: Record<string, string>
  body: Buffer
  /** The raw head, exactly as received (to see what a client really sent). */
  head: string
}

export interface RawHttpServer {
  url: string
  requests: RawRequest[]
  /** Connections accepted so far. */
  readonly connections: number
  close(): Promise<void>
}

/**
 * An HTTP/1.1 server that hands each request (Content-Length bodies, kept-alive connections) to
 * `answer` with the socket itself: a test writes exactly the bytes it wants, two answers for one
 * request, or closes the connection without answering. Bound to 127.0.0.1 on a free port.
 */
export async function startRawHttpServer(answer: (req: RawRequest, socket: Socket) => void): Promise<RawHttpServer> {
  const requests: RawRequest[] = []
  const sockets = new Set<Socket>()
  let connections = 0
  const server: Server = createServer((socket) => {
    const connection = ++connections
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
    socket.on('error', () => {})
    let buffered = Buffer.alloc(0)
    socket.on('data', (d: Buffer) => {
      buffered = Buffer.concat([buffered, d])
      for (;;) {
        const end = buffered.indexOf('\r\n\r\n')
        if (end < 0) return
        const head = buffered.subarray(0, end).toString('latin1')
        const [line = '', ...fields] = head.split('\r\n')
        const headers: Record<string, string> = {}
        for (const f of fields) {
          const colon = f.indexOf(':')
          if (colon > 0) headers[f.slice(0, colon).trim().toLowerCase()] = f.slice(colon + 1).trim()
        }
        const length = Number(headers['content-length'] ?? 0)
        if (buffered.length < end + 4 + length) return
        const body = Buffer.from(buffered.subarray(end + 4, end + 4 + length))
        buffered = buffered.subarray(end + 4 + length)
        const [method = '', path = ''] = line.split(' ')
        const req: RawRequest = { n: requests.length + 1, connection, method, path, headers, body, head }
        requests.push(req)
        answer(req, socket)
      }
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    get connections() {
      return connections
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy()
        server.close(() => resolve())
      }),
  }
}

/** An HTTP/1.1 answer as bytes: status line, headers, body (Content-Length added unless given). */
export function rawAnswer(status: number, headers: Record<string, string>, body: Buffer = Buffer.alloc(0)): Buffer {
  const all = { 'Content-Length': String(body.length), ...headers }
  const head = `HTTP/1.1 ${status} X\r\n${Object.entries(all)
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('')}\r\n`
  return Buffer.concat([Buffer.from(head, 'latin1'), body])
}
