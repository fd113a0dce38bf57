// The storage retry policy, against a bare HTTP server playing the blob service: what is retried
// (429, 5xx, resets, no answer), what is not (404), how long it may take.
import test from 'ava'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { BlobSource } from '../../src/storage/blob-source.js'
import { StorageError } from '../../src/storage/errors.js'

async function blobServer(t: import('ava').ExecutionContext, answer: (n: number, req: IncomingMessage, res: ServerResponse) => void): Promise<{ url: string; seen: number[] }> {
  const seen: number[] = []
  const server = createServer((req, res) => {
    seen.push(Date.now())
    req.resume()
    answer(seen.length - 1, req, res)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => {
    server.closeAllConnections()
    server.close()
  })
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/devstoreaccount1/c/image.img?sv=1&sig=x`, seen }
}

const properties = (res: ServerResponse) => res.writeHead(200, { 'content-length': '4096', etag: '"e1"', 'x-ms-blob-type': 'BlockBlob' }).end()

test('429 without Retry-After and 503 with it are retried; Retry-After is waited for', async (t) => {
  const s = await blobServer(t, (n, _req, res) => {
    if (n === 0) res.writeHead(429).end()
    else if (n === 1) res.writeHead(503, { 'retry-after': '1' }).end()
    else properties(res)
  })
  const src = await BlobSource.open({ url: s.url, retry: { baseDelayMs: 20 } })
  t.is(src.size, 4096)
  t.is(s.seen.length, 3)
  t.true(s.seen[2]! - s.seen[1]! >= 1000, `waited ${s.seen[2]! - s.seen[1]!} ms after Retry-After: 1`)
  await src.close()
})

test('a refusal (404) is not retried', async (t) => {
  const s = await blobServer(t, (_n, _req, res) => res.writeHead(404, { 'x-ms-error-code': 'BlobNotFound' }).end())
  const err = await t.throwsAsync(BlobSource.open({ url: s.url }), { instanceOf: StorageError })
  t.is(err?.code, 'STORAGE_NOT_FOUND')
  t.is(s.seen.length, 1)
})

test('no answer at all: STORAGE_TIMEOUT once the retry budget is spent, within budget + one attempt', async (t) => {
  const s = await blobServer(t, () => {
    /* never answers */
  })
  const started = Date.now()
  const err = await t.throwsAsync(BlobSource.open({ url: s.url, retry: { attemptTimeoutMs: 300, budgetMs: 1500, maxTries: 50, baseDelayMs: 50, maxDelayMs: 200 } }), {
    instanceOf: StorageError,
  })
  const took = Date.now() - started
  t.is(err?.code, 'STORAGE_TIMEOUT', err?.message)
  t.true(took >= 1300 && took < 1500 + 300 + 1000, `gave up after ${took} ms`)
  t.true(s.seen.length >= 3, `${s.seen.length} attempts`)
})
