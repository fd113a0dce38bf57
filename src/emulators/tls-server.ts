import { createServer, type Server } from 'node:https'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { createServerPki, type ServerPki } from './pki.js'

export type Handler = (req: IncomingMessage, body: Buffer, res: ServerResponse) => void | Promise<void>

export interface TlsServer {
  /** host:port, as the configuration's endpoints take it (no scheme). */
  endpoint: string
  url: string
  /** The CA that issued the server certificate: what clients must trust. */
  caPem: string
  pki: ServerPki
  stop(): Promise<void>
}

export function sendJson(res: ServerResponse, status: number, value: unknown): void {
  const body = JSON.stringify(value)
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body) })
  res.end(body)
}

/** An HTTPS server on 127.0.0.1 (free port unless given) with its own CA, for the emulators. */
export async function startTlsServer(handler: Handler, o: { port?: number; pki?: ServerPki; name: string }): Promise<TlsServer> {
  const pki = o.pki ?? (await createServerPki(['127.0.0.1', 'localhost'], `encfs ${o.name} emulator CA`))
  const server: Server = createServer({ key: pki.keyPem, cert: pki.certPem }, (req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      Promise.resolve(handler(req, Buffer.concat(chunks), res)).catch((err: unknown) => {
        if (!res.headersSent) sendJson(res, 500, { error: { code: 'InternalError', message: (err as Error).message } })
        else res.destroy()
      })
    })
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(o.port ?? 0, '127.0.0.1', () => resolve())
  })
  const { port } = server.address() as AddressInfo
  const endpoint = `127.0.0.1:${port}`
  return {
    endpoint,
    url: `https://${endpoint}`,
    caPem: pki.caPem,
    pki,
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}
