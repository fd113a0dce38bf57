import test from 'ava'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { randomBytes } from 'node:crypto'
import { isRestError } from '@azure/core-rest-pipeline'
import { rangeReader, type BlobHttpClient } from '../../src/storage/blob-http.js'
import { rawAnswer, startRawHttpServer } from '../helpers/raw-http.js'

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
      res.writeHead(206, { 'Content-Length': String(b - a + 1), 'Content-Range': `bytes ${a}-${b}/${blob.length}` })
      if (n === 1) {
        // Half the bytes, then the connection dies.
        res.write(blob.subarray(a, a + (b - a + 1) / 2), () => res.socket?.destroy())
      } else res.end(blob.subarray(a, b + 1))
    })
    try {
      const target = Buffer.alloc(100_000)
      await (await rangeReader(s.url, {}, client)).readInto(1000, target)
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
      res.writeHead(206, { 'Content-Length': String(b - a + 1), 'Content-Range': `bytes ${a}-${b}/${blob.length}` })
      res.end(blob.subarray(a, b + 1))
    })
    try {
      const get = await rangeReader(s.url, { maxTries: 1 }, client)
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
      // The right Content-Range, and no Content-Length: the body is chunked, and longer.
      res.writeHead(206, { 'Content-Range': `bytes ${a}-${b}/${blob.length}` })
      res.end(blob.subarray(a, b + 100))
    })
    try {
      await t.throwsAsync((await rangeReader(s.url, {}, client)).readInto(0, Buffer.alloc(4096)), { message: /more than the 4096 bytes/ })
      t.is(s.ranges.length, 1)
    } finally {
      await s.close()
    }
  })

  test(`${client}: a CR, LF or NUL in the pinned ETag is refused before anything is sent (HTTP_HEADER_INVALID)`, async (t) => {
    const s = await server((_req, res, _n, [a, b]) => {
      res.writeHead(206, { 'Content-Length': String(b - a + 1), 'Content-Range': `bytes ${a}-${b}/${blob.length}` })
      res.end(blob.subarray(a, b + 1))
    })
    try {
      for (const etag of ['"e"\r\nX-Injected: 1', '"e"\nGET /smuggled HTTP/1.1', '"e\0"']) {
        const err = await t.throwsAsync((await rangeReader(s.url, { maxTries: 1 }, client)).readInto(0, Buffer.alloc(4096), { etag }))
        t.is((err as { code?: string }).code, 'HTTP_HEADER_INVALID', JSON.stringify(etag))
      }
      t.is(s.ranges.length, 0, 'nothing reached the server')
    } finally {
      await s.close()
    }
  })

  test(`${client}: only http and https URLs are read (HTTP_URL_REFUSED)`, async (t) => {
    for (const url of ['file:///etc/passwd', 'ftp://127.0.0.1/c/b', 'gopher://127.0.0.1/c/b']) {
      const err = await t.throwsAsync(async () => (await rangeReader(url, { maxTries: 1 }, client)).readInto(0, Buffer.alloc(16)))
      t.is((err as { code?: string }).code, 'HTTP_URL_REFUSED', url)
    }
  })

  // A server or proxy answering something else than the range asked for: an error, and not a byte
  // of the answer in the caller's buffer.
  const hostile: [string, (res: ServerResponse, a: number, b: number) => void][] = [
    [
      '200 (the blob from its start) for a range further in',
      (res, a, b) => {
        res.writeHead(200, { 'Content-Length': String(b - a + 1) })
        res.end(blob.subarray(0, b - a + 1))
      },
    ],
    [
      '206 for the range 64 KiB further on, with its Content-Range',
      (res, a, b) => {
        res.writeHead(206, { 'Content-Length': String(b - a + 1), 'Content-Range': `bytes ${a + 65536}-${b + 65536}/${blob.length}` })
        res.end(blob.subarray(a + 65536, b + 65537))
      },
    ],
    [
      '206 for the right range but a shorter body (Content-Length)',
      (res, a, b) => {
        res.writeHead(206, { 'Content-Length': String(b - a + 1 - 100), 'Content-Range': `bytes ${a}-${b}/${blob.length}` })
        res.end(blob.subarray(a, b + 1 - 100))
      },
    ],
    [
      '206 without a Content-Range',
      (res, a, b) => {
        res.writeHead(206, { 'Content-Length': String(b - a + 1) })
        res.end(blob.subarray(a + 1, b + 2))
      },
    ],
  ]
  for (const [what, answer] of hostile) {
    test(`${client}: an answer that is not the range asked for is an error, and nothing of it reaches the buffer: ${what}`, async (t) => {
      const s = await server((_req, res, _n, [a, b]) => answer(res, a, b))
      try {
        const target = Buffer.alloc(8192, 0xee)
        const err = await t.throwsAsync((await rangeReader(s.url, { maxTries: 1 }, client)).readInto(16384, target))
        t.is(err?.name, 'UnaskedBytesError', err?.message)
        t.regex(err?.message ?? '', /asked for bytes 16384-24575/)
        t.true(
          target.every((x) => x === 0xee),
          'the buffer was not written',
        )
        t.is(s.ranges.length, 1, 'not resumed: a wrong answer is not a body that broke off')
      } finally {
        await s.close()
      }
    })
  }

  test(`${client}: a stray answer on a kept-alive connection is refused, and the connection dropped with what else it carries`, async (t) => {
    // For the second request the server first sends an answer nobody asked for (another range),
    // then the real one: a client that took the first would read the real one as the next answer.
    const raw = await startRawHttpServer((req, socket) => {
      const [a, b] = (/bytes=(\d+)-(\d+)/.exec(req.headers['x-ms-range'] ?? '') ?? []).slice(1).map(Number) as [number, number]
      const answer = (from: number, to: number) => rawAnswer(206, { 'Content-Range': `bytes ${from}-${to}/${blob.length}` }, blob.subarray(from, to + 1))
      if (req.n === 2) socket.write(Buffer.concat([answer(a + 65536, b + 65536), answer(a, b)]))
      else socket.write(answer(a, b))
    })
    try {
      const reader = await rangeReader(`${raw.url}/c/b?sv=x&sig=y`, { maxTries: 1 }, client)
      const one = Buffer.alloc(4096)
      await reader.readInto(0, one)
      t.true(one.equals(blob.subarray(0, 4096)))
      const two = Buffer.alloc(4096, 0xee)
      const err = await t.throwsAsync(reader.readInto(8192, two))
      t.is(err?.name, 'UnaskedBytesError', err?.message)
      t.true(
        two.every((x) => x === 0xee),
        'nothing of the stray answer reached the buffer',
      )
      const three = Buffer.alloc(4096)
      await reader.readInto(20000, three)
      t.true(three.equals(blob.subarray(20000, 24096)), 'the next read gets its own bytes, not the answer left behind')
      t.not(raw.requests[2]!.connection, raw.requests[1]!.connection, 'on a new connection')
    } finally {
      await raw.close()
    }
  })

  test(`${client}: a 200 is taken only for a request of the whole blob`, async (t) => {
    const small = blob.subarray(0, 5000)
    const s = await server((_req, res) => {
      res.writeHead(200, { 'Content-Length': String(small.length) })
      res.end(small)
    })
    try {
      const whole = Buffer.alloc(small.length)
      await (await rangeReader(s.url, { maxTries: 1 }, client)).readInto(0, whole)
      t.true(whole.equals(small))
      const part = Buffer.alloc(4096, 0xee)
      const err = await t.throwsAsync((await rangeReader(s.url, { maxTries: 1 }, client)).readInto(0, part))
      t.is(err?.name, 'UnaskedBytesError')
      t.true(part.every((x) => x === 0xee))
    } finally {
      await s.close()
    }
  })
}
