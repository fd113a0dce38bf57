import { createServer, connect, type Server, type Socket } from 'node:net'
import type { AddressInfo } from 'node:net'

export interface TcpProxy {
  port: number
  /** Storage "goes away": open connections are cut and new ones refused until restore(). */
  cut(): void
  restore(): void
  stop(): Promise<void>
}

/** A loopback TCP proxy in front of a server, to take storage away from remotefs and give it back. */
export async function startTcpProxy(targetPort: number): Promise<TcpProxy> {
  let down = false
  const sockets = new Set<Socket>()
  const server: Server = createServer((client) => {
    if (down) return client.destroy()
    const upstream = connect(targetPort, '127.0.0.1')
    for (const s of [client, upstream]) {
      sockets.add(s)
      s.on('close', () => sockets.delete(s))
      s.on('error', () => {})
    }
    client.pipe(upstream).pipe(client)
    client.on('close', () => upstream.destroy())
    upstream.on('close', () => client.destroy())
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    port: (server.address() as AddressInfo).port,
    cut() {
      down = true
      for (const s of sockets) s.destroy()
    },
    restore() {
      down = false
    },
    stop: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy()
        server.close(() => resolve())
      }),
  }
}
