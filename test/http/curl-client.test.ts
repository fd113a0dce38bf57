import test from 'ava'
import { randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { rootCertificates } from 'node:tls'
import { pathToFileURL } from 'node:url'
import { loadCurlAddon } from '../../src/http/curl-addon.js'
import { CurlClient, curlTrust } from '../../src/http/curl-client.js'
import { HttpError } from '../../src/http/errors.js'
import { rawAnswer, startRawHttpServer } from '../helpers/raw-http.js'
import { tempDir } from '../helpers/temp.js'

test("libcurl keeps its system bundle unless NODE_EXTRA_CA_CERTS adds to it; without a bundle, Node.js's roots", async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'encfs-trust-'))
  try {
    const system = path.join(dir, 'system.pem')
    const extra = path.join(dir, 'extra.pem')
    await writeFile(system, 'SYSTEM-BUNDLE')
    await writeFile(extra, 'EXTRA-CA')
    t.deepEqual(curlTrust(system, {}), { source: system })
    t.deepEqual(curlTrust(system, { NODE_EXTRA_CA_CERTS: system }), { source: system }, 'the bundle named again adds nothing')
    const both = curlTrust(system, { NODE_EXTRA_CA_CERTS: extra })
    t.regex(String(both.caPem), /SYSTEM-BUNDLE[\s\S]*EXTRA-CA/)
    t.is(both.source, `${system} + ${extra}`)
    const noBundle = curlTrust(path.join(dir, 'missing.pem'), {})
    t.true(String(noBundle.caPem).includes(rootCertificates[0]!))
    // An unreadable NODE_EXTRA_CA_CERTS is skipped, as Node.js does.
    t.is(curlTrust(system, { NODE_EXTRA_CA_CERTS: path.join(dir, 'nope.pem') }).source, system)
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})

// What a request may carry, and the rewind of an upload, through the process's libcurl client and
// the addon underneath it (native/http). Servers are raw HTTP/1.1 on 127.0.0.1.

test('libcurl: CR, LF or NUL in a header is refused before anything is sent, by the client (HTTP_HEADER_INVALID) and by the addon itself', async (t) => {
  const server = await startRawHttpServer((_req, socket) => socket.write(rawAnswer(201, {})))
  const fetcher = new (loadCurlAddon().Fetcher)({}, () => {})
  try {
    const http = CurlClient.get()
    const url = `${server.url}/c/b?comp=page`
    for (const header of ['x-ms-lease-id: a\r\nX-Injected: 1', 'If-Match: "e"\nPUT /smuggled HTTP/1.1', 'x-ms-lease-id: a\0b', 'Bad Name: x', ': no name']) {
      const err = await t.throwsAsync(http.send({ method: 'PUT', url, headers: [header], buffer: Buffer.alloc(512), timeoutMs: 5000 }), { instanceOf: HttpError })
      t.is(err?.code, 'HTTP_HEADER_INVALID', JSON.stringify(header))
      t.false(/Injected|smuggled/.test(err?.message ?? ''), 'the message does not carry the value')
      // The addon refuses it too, for any caller that would skip the client's check.
      const direct = t.throws(() => fetcher.put(url, [header], Buffer.alloc(512), 5000), { instanceOf: TypeError })
      t.is((direct as Error & { code?: string }).code, 'HTTP_HEADER_INVALID')
      t.throws(() => fetcher.get(url, [header], Buffer.alloc(512), 5000, 0), { instanceOf: TypeError })
    }
    t.is(server.requests.length, 0, 'nothing reached the server')
  } finally {
    fetcher.close()
    await server.close()
  }
})

test('libcurl: only http and https are spoken: a PUT to file:// is refused and writes no file', async (t) => {
  const tmp = await tempDir()
  const fetcher = new (loadCurlAddon().Fetcher)({}, () => {})
  try {
    const target = path.join(tmp.dir, 'written-by-a-put')
    for (const url of [pathToFileURL(target).href, `FILE://${target}`, 'ftp://127.0.0.1/x', 'gopher://127.0.0.1/x', 'http://127.0.0.1/a b']) {
      const err = await t.throwsAsync(CurlClient.get().send({ method: 'PUT', url, headers: [], buffer: Buffer.from('not yours'), timeoutMs: 5000 }), { instanceOf: HttpError })
      t.is(err?.code, 'HTTP_URL_REFUSED', url)
      const direct = t.throws(() => fetcher.put(url, [], Buffer.from('not yours'), 5000), { instanceOf: TypeError })
      t.is((direct as Error & { code?: string }).code, 'HTTP_URL_REFUSED')
    }
    t.false(existsSync(target), 'no file was written')
  } finally {
    fetcher.close()
    await tmp.cleanup()
  }
})

test('libcurl: a Put Page on a kept-alive connection the server closed is sent again on a new one, its body rewound and complete', async (t) => {
  // Request 2 is read whole, then its connection is closed without an answer: a server closing an
  // idle connection just as it is reused. libcurl sends it again on a fresh connection, which
  // needs the body from its start.
  const server = await startRawHttpServer((req, socket) => (req.n === 2 ? socket.destroy() : socket.write(rawAnswer(201, {}))))
  try {
    const http = CurlClient.get()
    const url = `${server.url}/c/b?comp=page`
    const first = await http.send({ method: 'PUT', url, headers: ['x-ms-page-write: update'], buffer: randomBytes(64 * 1024), timeoutMs: 10_000 })
    t.is(first.status, 201)
    const body = randomBytes(1536 * 1024)
    const parts = [body.subarray(0, 700_001), body.subarray(700_001, 700_001), body.subarray(700_001)]
    const again = await http.send({ method: 'PUT', url, headers: ['x-ms-page-write: update'], buffer: parts, timeoutMs: 10_000 })
    t.is(again.curlCode, 0, again.message)
    t.is(again.status, 201)
    t.is(again.bytes, body.length, 'the count of bytes sent is the body once')
    t.is(server.requests.length, 3)
    t.is(server.requests[1]!.connection, server.requests[0]!.connection, 'the second PUT went on the kept-alive connection')
    t.not(server.requests[2]!.connection, server.requests[1]!.connection, 'and was sent again on a new one')
    t.true(server.requests[2]!.body.equals(body), 'the body sent again is the whole body, from its first byte')
  } finally {
    await server.close()
  }
})

test('libcurl: option values are checked when the fetcher is made', (t) => {
  const { Fetcher } = loadCurlAddon()
  t.throws(() => new Fetcher({ maxHostConnections: 0 }, () => {}), { instanceOf: RangeError })
  t.throws(() => new Fetcher({ bufferSize: -1 }, () => {}), { instanceOf: RangeError })
  t.throws(() => new Fetcher({ userAgent: 'encfs\r\nX-Injected: 1' }, () => {}), { instanceOf: TypeError })
  const f = new Fetcher({}, () => {})
  try {
    t.throws(() => f.get('http://127.0.0.1/x', [], Buffer.alloc(16), Number.NaN, 0), { instanceOf: RangeError })
    t.throws(() => f.get('http://127.0.0.1/x', [], Buffer.alloc(16), 1000, -1), { instanceOf: RangeError })
    t.throws(() => f.get('http://127.0.0.1/x', [], Buffer.alloc(0), 1000, 0), { instanceOf: RangeError })
    t.throws(() => f.cancel(-1), { instanceOf: RangeError })
  } finally {
    f.close()
  }
})
