// The project's HTTP client: trust (ca plus NODE_EXTRA_CA_CERTS), retries that honour
// Retry-After, and failures that tell a timeout from an unreachable host.
import test from 'ava'
import { execFile } from 'node:child_process'
import { createServer, type Server } from 'node:http'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import type { AddressInfo } from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { request } from '../../src/http/request.js'
import { HttpError } from '../../src/http/errors.js'
import { createServerPki } from '../../src/emulators/pki.js'
import { startTlsServer, sendJson } from '../../src/emulators/tls-server.js'

const here = path.dirname(fileURLToPath(import.meta.url))

async function httpServer(handler: (n: number, res: import('node:http').ServerResponse) => void): Promise<{ url: string; server: Server; seen: number[] }> {
  const seen: number[] = []
  let n = 0
  const server = createServer((req, res) => {
    seen.push(Date.now())
    req.resume()
    req.on('end', () => handler(n++, res))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/x`, server, seen }
}

test('an explicit ca keeps the certificates of NODE_EXTRA_CA_CERTS', async (t) => {
  // Server A's CA comes from NODE_EXTRA_CA_CERTS (read by Node at start-up: a child process);
  // the request also passes server B's CA as `ca`. Both must be trusted.
  const a = await startTlsServer((_req, _body, res) => sendJson(res, 200, { ok: 'a' }), { name: 'a' })
  const b = await createServerPki(['127.0.0.1'], 'encfs test CA b')
  const dir = await mkdtemp(path.join(os.tmpdir(), 'encfs-ca-'))
  t.teardown(async () => {
    await a.stop()
    await rm(dir, { recursive: true, force: true })
  })
  await writeFile(path.join(dir, 'a.pem'), a.caPem)
  const requestJs = pathToFileURL(path.resolve(here, '../../src/http/request.js')).href
  const script = `import(${JSON.stringify(requestJs)}).then(async (m) => {
    const res = await m.request(${JSON.stringify(`${a.url}/`)}, { what: 'test', ca: [${JSON.stringify(b.caPem)}] })
    process.stdout.write(String(res.status))
  }).catch((e) => { process.stdout.write('failed: ' + e.message); process.exitCode = 1 })`
  const out = await new Promise<string>((resolve) =>
    execFile(process.execPath, ['--input-type=module', '-e', script], { env: { ...process.env, NODE_EXTRA_CA_CERTS: path.join(dir, 'a.pem') } }, (_e, stdout) => resolve(stdout)),
  )
  t.is(out, '200')
})

test('429 with Retry-After: the retry waits at least that long', async (t) => {
  const s = await httpServer((n, res) => {
    if (n === 0) res.writeHead(429, { 'retry-after': '1' }).end()
    else res.writeHead(200).end('ok')
  })
  t.teardown(() => s.server.close())
  const res = await request(s.url, { what: 'test', attempts: 3, baseDelayMs: 10 })
  t.is(res.status, 200)
  t.true(s.seen[1]! - s.seen[0]! >= 1000, `retried after ${s.seen[1]! - s.seen[0]!} ms`)
  t.true(s.seen[1]! - s.seen[0]! < 2500, 'with a little jitter, not much more')
})

test('503 with Retry-After as an HTTP date is honoured too; without it the backoff is short and jittered', async (t) => {
  const s = await httpServer((n, res) => {
    if (n === 0) res.writeHead(503, { 'retry-after': new Date(Date.now() + 2000).toUTCString() }).end()
    else if (n < 4) res.writeHead(503).end()
    else res.writeHead(200).end('ok')
  })
  t.teardown(() => s.server.close())
  const res = await request(s.url, { what: 'test', attempts: 5, baseDelayMs: 20 })
  t.is(res.status, 200)
  t.true(s.seen[1]! - s.seen[0]! >= 900, `first retry after ${s.seen[1]! - s.seen[0]!} ms (date has 1 s resolution)`)
  const gaps = [2, 3, 4].map((i) => s.seen[i]! - s.seen[i - 1]!)
  t.true(
    gaps.every((g) => g < 500),
    `backoff gaps ${gaps.join(', ')} ms`,
  )
})

test('a Retry-After beyond the cap is not waited for: the request fails at once with the answer', async (t) => {
  const s = await httpServer((_n, res) => res.writeHead(429, { 'retry-after': '3600' }).end())
  t.teardown(() => s.server.close())
  const started = Date.now()
  const res = await request(s.url, { what: 'test', attempts: 3, baseDelayMs: 10 })
  t.is(res.status, 429)
  t.true(Date.now() - started < 1000)
  t.is(s.seen.length, 1)
})

test('no answer in time is HTTP_TIMEOUT; a refused connection is HTTP_UNREACHABLE', async (t) => {
  const s = await httpServer(() => {
    /* never answers */
  })
  t.teardown(() => {
    s.server.closeAllConnections()
    s.server.close()
  })
  const slow = await t.throwsAsync(request(s.url, { what: 'test', attempts: 2, baseDelayMs: 10, timeoutMs: 200 }), { instanceOf: HttpError })
  t.is(slow.code, 'HTTP_TIMEOUT')
  t.regex(slow.message, /no answer within 200 ms/)
  const refused = await t.throwsAsync(request('http://127.0.0.1:1/x', { what: 'test', attempts: 1 }), { instanceOf: HttpError })
  t.is(refused.code, 'HTTP_UNREACHABLE')
})
