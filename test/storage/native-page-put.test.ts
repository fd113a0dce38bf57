// Put Page through either HTTP client (src/storage/native-page-put.ts) against a raw HTTP/1.1
// server: the body sent again, whole, when a kept-alive connection dies under it; a lease id that
// would inject headers refused before anything is sent.
import test from 'ava'
import { randomBytes } from 'node:crypto'
import { AnonymousCredential, PageBlobClient } from '@azure/storage-blob'
import { pagePut } from '../../src/storage/native-page-put.js'
import type { BlobHttpClient } from '../../src/storage/blob-http.js'
import { rawAnswer, startRawHttpServer } from '../helpers/raw-http.js'

const created = () => rawAnswer(201, { 'x-ms-request-id': 'r', 'x-ms-version': '2026-04-06', ETag: '"0x1"', 'Last-Modified': new Date().toUTCString() })

for (const client of ['native', 'node'] as BlobHttpClient[]) {
  test(`${client}: a Put Page whose kept-alive connection is closed after it was sent is sent again on a new connection, whole`, async (t) => {
    const server = await startRawHttpServer((req, socket) => (req.n === 2 ? socket.destroy() : socket.write(created())))
    try {
      const url = `${server.url}/devstoreaccount1/c/b?sv=x&sig=y`
      const put = pagePut(url, {}, client, new PageBlobClient(url, new AnonymousCredential()))
      await put.putPages(0, randomBytes(512 * 8), { leaseId: 'lease-1' })
      const body = randomBytes(512 * 3000)
      await put.putPages(512 * 8, body, { leaseId: 'lease-1' })
      const last = server.requests.at(-1)!
      t.true(server.requests.length >= 3)
      t.not(last.connection, server.requests[1]!.connection, 'sent again on a new connection')
      t.true(last.body.equals(body), 'the body sent again is the whole body')
      t.is(last.headers['x-ms-range'], `bytes=${512 * 8}-${512 * 8 + body.length - 1}`)
    } finally {
      await server.close()
    }
  })

  test(`${client}: a lease id holding CR, LF or NUL is refused before anything is sent (HTTP_HEADER_INVALID)`, async (t) => {
    const server = await startRawHttpServer((_req, socket) => socket.write(created()))
    try {
      const url = `${server.url}/devstoreaccount1/c/b?sv=x&sig=y`
      const put = pagePut(url, {}, client, new PageBlobClient(url, new AnonymousCredential()))
      for (const leaseId of ['l\r\nx-ms-page-write: clear', 'l\nPUT /c/other?comp=page HTTP/1.1', 'l\0']) {
        const err = await t.throwsAsync(put.putPages(0, Buffer.alloc(512), { leaseId }))
        t.is((err as { code?: string }).code, 'HTTP_HEADER_INVALID', JSON.stringify(leaseId))
      }
      t.is(server.requests.length, 0, 'nothing reached the server')
    } finally {
      await server.close()
    }
  })
}
