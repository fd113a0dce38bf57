import test from 'ava'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { randomBytes } from 'node:crypto'
import { isRestError } from '@azure/core-rest-pipeline'
import { rangeReader, type BlobHttpClient } from '../../src/storage/blob-http.js'

const blob = randomBytes(256 * 1024)

/** A blob server whose behaviour per request the test decides; it records every Range asked for. */
async function server(handle: (req: IncomingMessage, res: ServerResponse, n: number, range: [number, number]) => void) {
  const ranges: string[] = []
  const srv = createServer((req, res) => {
    const r = String(req.headers['x-ms-range'] ?? '')
    ranges.push(r)
    const m = /^bytes=(\d+)-(\d+)$/.exec(r)!
    handle(req, res, ranges.length, [Number(m[1]), Number(m[2])])
  })
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve))
  const url = `http://127.0.0.1:${(srv.address() as AddressInfo).port}/c/b?sv=x&sig=y`
  return { url, ranges, close: () => new Promise<void>((resolve) => srv.close(() => resolve())) }
}

// Both clients (libcurl and the SDK's pipeline) keep the same contract.
for (const client of ['native', 'node'] as BlobHttpClient[]) {
  test(`${client}: a body that breaks off is asked for again from where it stopped`, async (t) => {
    const s = await server((_req, res, n, [a, b]) => {
      res.writeHead(206, { 'Content-Length': String(b - a + 1) })
      if (n === 1) {
        // Half the bytes, then the connection dies.
        res.write(blob.subarray(a, a + (b - a + 1) / 2), () => res.socket?.destroy())
      } else res.end(blob.subarray(a, b + 1))
    })
    try {
      const target = Buffer.alloc(100_000)
      await rangeReader(s.url, {}, client).readInto(1000, target)
      t.true(target.equals(blob.subarray(1000, 101_000)))
      t.is(s.ranges[0], 'bytes=1000-100999')
      t.is(s.ranges[1], 'bytes=51000-100999', 'the second request starts where the first stopped')
    } finally {
      await s.close()
    }
  })

  test(`${client}: If-Match is sent, and a changed blob is a RestError with status 412 and the service code`, async (t) => {
    const s = await server((req, res, _n, [a, b]) => {
      if (req.headers['if-match'] !== '"v1"') {
        res.writeHead(412, { 'x-ms-error-code': 'ConditionNotMet' })
        res.end('<Error/>')
        return
      }
      res.writeHead(206, { 'Content-Length': String(b - a + 1) })
      res.end(blob.subarray(a, b + 1))
    })
    try {
      const get = rangeReader(s.url, { maxTries: 1 }, client)
      const ok = Buffer.alloc(4096)
      await get.readInto(0, ok, { etag: '"v1"' })
      t.true(ok.equals(blob.subarray(0, 4096)))
      const err = await t.throwsAsync(get.readInto(0, Buffer.alloc(4096), { etag: '"v2"' }))
      t.true(isRestError(err))
      t.is((err as { statusCode?: number }).statusCode, 412)
      t.is((err as { code?: string }).code, 'ConditionNotMet')
    } finally {
      await s.close()
    }
  })

  test(`${client}: a server sending more than asked for is an error, not resumed`, async (t) => {
    const s = await server((_req, res, _n, [a, b]) => {
      res.writeHead(206)
      res.end(blob.subarray(a, b + 100))
    })
    try {
      await t.throwsAsync(rangeReader(s.url, {}, client).readInto(0, Buffer.alloc(4096)), { message: /more than the 4096 bytes/ })
      t.is(s.ranges.length, 1)
    } finally {
      await s.close()
    }
  })
}
