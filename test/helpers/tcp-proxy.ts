import { createServer, connect, type Server, type Socket } from 'node:net'
import type { AddressInfo } from 'node:net'

export interface TcpProxy {
  port: number
  /** Storage "goes away": open connections are cut and new ones refused until restore(). */
  cut(): void
  restore(): void
  stop(): Promise<void>
}

/**
 * What storage far from the client looks like (docs/data-path.md#the-latency-profile): every
 * request reaches the server `requestDelayMs` after the client sent it, so its answer's first
 * byte is that much later, and each connection's answers arrive at most `bytesPerSecond`.
 */
export interface LatencyProfile {
  requestDelayMs: number
  bytesPerSecond: number
}

/**
 * A loopback TCP proxy in front of a server, to take storage away from remotefs and give it
 * back, or, with a profile, to put it at a distance: a kernel qdisc (netem, fq) would do that
 * with less CPU, but the test VM's kernel has neither, so the proxy does it per connection.
 */
export async function startTcpProxy(targetPort: number, profile?: LatencyProfile): Promise<TcpProxy> {
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
    if (profile) shape(client, upstream, profile)
    else client.pipe(upstream).pipe(client)
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

/**
 * One HTTP/1.1 connection under a latency profile. A request is the client's bytes from the
 * first one after an answer began (or the connection opened) on: held until `requestDelayMs`
 * after that first byte, then passed on in order (a Put Page's body follows its headers). Answer
 * bytes leave no sooner than the per-connection rate allows; both directions keep backpressure.
 */
/** How far ahead of its rate a connection may run: a burst, as a real link's queue allows. */
const BURST_MS = 4

function shape(client: Socket, upstream: Socket, profile: LatencyProfile): void {
  let answered = true
  let releaseAt = 0
  const held: Buffer[] = []
  let holding: NodeJS.Timeout | undefined
  const release = () => {
    holding = undefined
    let room = true
    for (const b of held.splice(0)) room = upstream.write(b)
    if (room) client.resume()
  }
  client.on('data', (chunk: Buffer) => {
    const now = performance.now()
    if (answered) {
      answered = false
      releaseAt = now + profile.requestDelayMs
    }
    if (held.length === 0 && now >= releaseAt) {
      if (!upstream.write(chunk)) client.pause()
      return
    }
    held.push(chunk)
    client.pause()
    holding ??= setTimeout(release, releaseAt - now)
  })
  upstream.on('drain', () => {
    if (held.length === 0) client.resume()
  })
  // A token bucket: answers flow at once while within a few milliseconds' worth of the rate
  // (timers are coarse), and the connection waits for its debt beyond that.
  let freeAt = 0
  let pacing = false
  const resume = () => {
    if (!pacing && !client.writableNeedDrain) upstream.resume()
  }
  upstream.on('data', (chunk: Buffer) => {
    answered = true
    const now = performance.now()
    freeAt = Math.max(now, freeAt) + (chunk.length * 1000) / profile.bytesPerSecond
    if (!client.write(chunk)) upstream.pause()
    if (freeAt - now > BURST_MS) {
      pacing = true
      upstream.pause()
      setTimeout(
        () => {
          pacing = false
          resume()
        },
        freeAt - now - BURST_MS,
      )
    }
  })
  client.on('drain', resume)
  client.on('close', () => clearTimeout(holding))
}
