// The storage-latency profile of the bench (test/helpers/tcp-proxy.ts with a profile): every
// request waits its delay, each connection's answers are capped, and bytes pass intact.
import test from 'ava'
import { createHash, randomBytes } from 'node:crypto'
import { Agent, request } from 'node:http'
import { startRawHttpServer, type RawHttpServer } from '../helpers/raw-http.js'
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.js'
import { within } from '../helpers/time.js'

const MiB = 1024 * 1024
const body = randomBytes(2 * MiB)

async function setUp(profile: { requestDelayMs: number; bytesPerSecond: number }): Promise<{ server: RawHttpServer; proxy: TcpProxy; close(): Promise<void> }> {
  const server = await startRawHttpServer((req, socket) => {
    const answer = req.method === 'PUT' ? Buffer.from(createHash('sha256').update(req.body).digest('hex')) : body.subarray(0, Number(req.path.slice(1)))
    socket.write(`HTTP/1.1 200 OK\r\nContent-Length: ${answer.length}\r\n\r\n`)
    socket.write(answer)
  })
  const proxy = await startTcpProxy(Number(new URL(server.url).port), profile)
  return {
    server,
    proxy,
    close: async () => {
      await proxy.stop()
      await server.close()
    },
  }
}

/** One request through the proxy: ms to the answer's head and to its last byte, and the body. */
function fetchVia(port: number, agent: Agent, path: string, put?: Buffer): Promise<{ headMs: number; totalMs: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const started = performance.now()
    const req = request({ host: '127.0.0.1', port, path, agent, method: put ? 'PUT' : 'GET', headers: put ? { 'content-length': put.length } : {} }, (res) => {
      const headMs = performance.now() - started
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => resolve({ headMs, totalMs: performance.now() - started, body: Buffer.concat(chunks) }))
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end(put)
  })
}

test('every request on a kept-alive connection reaches the server its delay later, and a Put body arrives intact behind its headers', async (t) => {
  const env = await setUp({ requestDelayMs: 50, bytesPerSecond: 100 * MiB })
  const agent = new Agent({ keepAlive: true, maxSockets: 1 })
  try {
    for (let i = 0; i < 3; i++) {
      const r = await within(10_000, 'a GET through the proxy', fetchVia(env.proxy.port, agent, '/100'))
      t.true(r.headMs >= 49, `request ${i + 1}: answer after ${r.headMs.toFixed(1)} ms`)
      t.true(r.body.equals(body.subarray(0, 100)))
    }
    const put = randomBytes(3 * MiB)
    const r = await within(10_000, 'a PUT through the proxy', fetchVia(env.proxy.port, agent, '/put', put))
    t.is(r.body.toString(), createHash('sha256').update(put).digest('hex'))
    t.true(r.headMs >= 49)
    t.is(env.server.connections, 1, 'one connection, kept alive')
  } finally {
    agent.destroy()
    await env.close()
  }
})

test('answers are capped per connection: one 2 MiB answer at 10 MiB/s takes 0.2 s, and two at once on two connections take no longer', async (t) => {
  const env = await setUp({ requestDelayMs: 0, bytesPerSecond: 10 * MiB })
  const agent = new Agent({ keepAlive: true, maxSockets: 2 })
  try {
    const one = await within(10_000, 'a capped GET', fetchVia(env.proxy.port, agent, `/${2 * MiB}`))
    t.true(one.body.equals(body))
    t.true(one.totalMs >= 190, `2 MiB in ${one.totalMs.toFixed(0)} ms`)
    const started = performance.now()
    const both = await within(10_000, 'two capped GETs', Promise.all([fetchVia(env.proxy.port, agent, `/${2 * MiB}`), fetchVia(env.proxy.port, agent, `/${2 * MiB}`)]))
    const ms = performance.now() - started
    for (const r of both) t.true(r.body.equals(body))
    t.true(ms >= 190 && ms < 380, `two 2 MiB answers on two connections in ${ms.toFixed(0)} ms (one alone ${one.totalMs.toFixed(0)} ms)`)
  } finally {
    agent.destroy()
    await env.close()
  }
})
