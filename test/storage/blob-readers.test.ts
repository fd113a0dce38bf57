// Both HTTP clients of blob reads (src/storage/blob-http.ts) against the same storage and the same
// faults: libcurl on its own thread (native) and the SDK's pipeline (node) must not differ in
// anything a user or the retry policy can see: bytes, statuses, error codes, Retry-After,
// resumed bodies, aborts, bearer tokens, TLS verification.
import test from 'ava'
import { createHash, randomBytes } from 'node:crypto'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { writeFile } from 'node:fs/promises'
import { createServer } from 'node:https'
import type { AddressInfo } from 'node:net'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { isRestError } from '@azure/core-rest-pipeline'
import { uploadFile, type Azurite } from '../helpers/azurite.js'
import { E2eFixture } from '../helpers/e2e.js'
import { startFaultProxy, type Fault } from '../helpers/fault-proxy.js'
import { createServerPki } from '../../src/emulators/pki.js'
import { BlobSource } from '../../src/storage/blob-source.js'
import { storageError } from '../../src/storage/storage-error.js'
import { rangeReader, type BlobHttpClient } from '../../src/storage/blob-http.js'
import { StorageError } from '../../src/storage/errors.js'

const exec = promisify(execFile)
const SIZE = 6 * 1024 * 1024 + 777
const CLIENTS: BlobHttpClient[] = ['native', 'node']

let az: Azurite
let dir: string
let bytes: Buffer
let file: string

// Azurite and the temporary directory: started before the file's tests, stopped and removed after.
const fx = new E2eFixture(test)

test.before(async () => {
  az = await fx.azurite()
  dir = await fx.tempDir('encfs-blob-readers-')
  bytes = randomBytes(SIZE)
  file = path.join(dir, 'blob.bin')
  await writeFile(file, bytes)
})

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex')

/** Only ranged GETs are faulted (not the SDK's HEAD at open), and only the first `n` of them. */
function firstGets(n: number) {
  let seen = 0
  return (req: { method?: string; headers: Record<string, unknown> }) => req.method === 'GET' && Boolean(req.headers['x-ms-range']) && seen++ < n
}

for (const client of CLIENTS) {
  test(`${client}: ranges read byte for byte, alone and through BlobSource`, async (t) => {
    const { sasUrl } = await uploadFile(az, file, { kind: 'block' })
    const reader = await rangeReader(sasUrl, { maxTries: 1 }, client)
    const ranges: [number, number][] = [
      [0, 1],
      [0, 4096],
      [SIZE - 1, 1],
      [SIZE - 70_000, 70_000],
      [1000, 3 * 1024 * 1024 + 17],
    ]
    for (let i = 0; i < 20; i++) {
      const off = Math.floor(Math.random() * SIZE)
      ranges.push([off, Math.min(SIZE - off, 1 + Math.floor(Math.random() * 300_000))])
    }
    await Promise.all(
      ranges.map(async ([off, len]) => {
        const buf = Buffer.alloc(len)
        await reader.readInto(off, buf)
        t.true(buf.equals(bytes.subarray(off, off + len)), `[${off}, +${len})`)
      }),
    )
    const src = await BlobSource.open({ url: sasUrl, http: client })
    try {
      t.true((await src.read(SIZE - 5000, 5000)).equals(bytes.subarray(SIZE - 5000)))
    } finally {
      await src.close()
    }
  })

  test(`${client}: a blob replaced after open is STORAGE_BLOB_CHANGED (If-Match of the pinned ETag, 412)`, async (t) => {
    const blob = `changing-${client}`
    const { sasUrl } = await uploadFile(az, file, { kind: 'block', blob })
    const src = await BlobSource.open({ url: sasUrl, http: client })
    try {
      t.true((await src.read(0, 4096)).equals(bytes.subarray(0, 4096)))
      await uploadFile(az, file, { kind: 'block', blob })
      const err = await t.throwsAsync(src.read(4096, 4096), { instanceOf: StorageError })
      t.is(err?.code, 'STORAGE_BLOB_CHANGED')
      const cause = err?.cause as { statusCode?: number; code?: string }
      t.is(cause.statusCode, 412)
      t.is(cause.code, 'ConditionNotMet')
    } finally {
      await src.close()
    }
  })

  test(`${client}: a missing blob is 404 STORAGE_NOT_FOUND; a SAS of another blob is 403 STORAGE_ACCESS_DENIED`, async (t) => {
    const a = await uploadFile(az, file, { kind: 'block' })
    const b = await uploadFile(az, file, { kind: 'block' })
    // A public container answers for a missing blob; a SAS names its blob, so it would be 403.
    const pub = await uploadFile(az, file, { kind: 'block', publicAccess: true })
    const missing = pub.url.replace(/\/[^/]+$/, '/no-such-blob')
    const e404 = await t.throwsAsync((await rangeReader(missing, { maxTries: 1 }, client)).readInto(0, Buffer.alloc(512)))
    t.true(isRestError(e404))
    t.is((e404 as { statusCode?: number }).statusCode, 404)
    t.is(storageError(e404, { url: missing }, 'reading').code, 'STORAGE_NOT_FOUND')
    const crossed = `${a.url}?${new URL(b.sasUrl).search.slice(1)}`
    const e403 = await t.throwsAsync((await rangeReader(crossed, { maxTries: 1 }, client)).readInto(0, Buffer.alloc(512)))
    t.is((e403 as { statusCode?: number }).statusCode, 403)
    const mapped = storageError(e403, { url: crossed }, 'reading')
    t.is(mapped.code, 'STORAGE_ACCESS_DENIED')
    t.false(mapped.message.includes('sig='), 'no SAS in the message')
  })

  test(`${client}: 429 and 503 carry their code and Retry-After; BlobSource waits that long and reads on`, async (t) => {
    const { sasUrl } = await uploadFile(az, file, { kind: 'block' })
    const proxy = await startFaultProxy({ port: Number(new URL(sasUrl).port) })
    try {
      for (const [fault, status, code] of [
        ['429-retry-after', 429, 'TooManyRequests'],
        ['503-retry-after', 503, 'ServerBusy'],
      ] as const) {
        proxy.setPlan({ every: 1, faults: [fault], applies: firstGets(1) })
        const err = await t.throwsAsync((await rangeReader(proxy.via(sasUrl), { maxTries: 1 }, client)).readInto(0, Buffer.alloc(4096)))
        t.true(isRestError(err), fault)
        const e = err as { statusCode?: number; code?: string; response?: { headers: { get(n: string): string | undefined } } }
        t.is(e.statusCode, status)
        t.is(e.code, code)
        t.is(e.response?.headers.get('retry-after'), '1')
      }
      const faults: Fault[] = ['429-retry-after', '503-retry-after']
      proxy.setPlan({ every: 1, faults, applies: firstGets(2) })
      const src = await BlobSource.open({ url: proxy.via(sasUrl), http: client })
      try {
        const started = Date.now()
        t.true((await src.read(8192, 100_000)).equals(bytes.subarray(8192, 108_192)))
        const ms = Date.now() - started
        t.true(ms >= 1900, `two Retry-After: 1 were waited out (${ms} ms)`)
        t.is(proxy.counts['429-retry-after'], 2)
        t.is(proxy.counts['503-retry-after'], 2)
      } finally {
        await src.close()
      }
    } finally {
      await proxy.stop()
    }
  })

  test(`${client}: a body cut off mid-way is asked for again from where it stopped`, async (t) => {
    const { sasUrl } = await uploadFile(az, file, { kind: 'block' })
    const proxy = await startFaultProxy({ port: Number(new URL(sasUrl).port) })
    const ranges: string[] = []
    try {
      const faultFirst = firstGets(1)
      proxy.setPlan({
        every: 1,
        faults: ['reset-mid-body'],
        applies: (req) => {
          ranges.push(String(req.headers['x-ms-range']))
          return faultFirst(req)
        },
      })
      const buf = Buffer.alloc(2 * 1024 * 1024)
      await (await rangeReader(proxy.via(sasUrl), { maxTries: 1 }, client)).readInto(4096, buf)
      t.true(buf.equals(bytes.subarray(4096, 4096 + buf.length)))
      t.is(ranges.length, 2, ranges.join(' '))
      t.is(ranges[0], `bytes=4096-${4096 + buf.length - 1}`)
      const resumedAt = Number(/^bytes=(\d+)-/.exec(ranges[1]!)![1])
      t.true(resumedAt > 4096 && resumedAt < 4096 + buf.length, `resumed at ${resumedAt}`)
    } finally {
      await proxy.stop()
    }
  })

  test(`${client}: aborting a read ends it at once and lets go of the buffer`, async (t) => {
    const { sasUrl } = await uploadFile(az, file, { kind: 'block' })
    const proxy = await startFaultProxy({ port: Number(new URL(sasUrl).port) }, { every: 1, faults: ['slow-body'] })
    try {
      const controller = new AbortController()
      const buf = Buffer.alloc(4 * 1024 * 1024)
      const started = Date.now()
      setTimeout(() => controller.abort(), 200)
      const err = await t.throwsAsync((await rangeReader(proxy.via(sasUrl), { maxTries: 1 }, client)).readInto(0, buf, { signal: controller.signal }))
      t.is(err?.name, 'AbortError')
      t.true(Date.now() - started < 1500, `aborted after ${Date.now() - started} ms (the whole body takes about 2.5 s)`)
      const copy = Buffer.from(buf)
      await new Promise((resolve) => setTimeout(resolve, 200))
      t.true(buf.equals(copy), 'nothing is written into the buffer after the abort')
    } finally {
      await proxy.stop()
    }
  })

  test(`${client}: bearer tokens over https with a test CA from NODE_EXTRA_CA_CERTS; an unknown CA is refused`, async (t) => {
    const pki = await createServerPki(['127.0.0.1'])
    const caFile = path.join(dir, `ca-${client}.pem`)
    await writeFile(caFile, pki.caPem)
    const auth: string[] = []
    const srv = createServer({ key: pki.keyPem, cert: pki.certPem }, (req, res) => {
      auth.push(String(req.headers.authorization))
      if (req.headers.authorization !== 'Bearer token-1') {
        res.writeHead(401, { 'x-ms-error-code': 'InvalidAuthenticationInfo' }).end()
        return
      }
      const [a, b] = /^bytes=(\d+)-(\d+)$/.exec(String(req.headers['x-ms-range']))!.slice(1).map(Number) as [number, number]
      res.writeHead(206, { 'content-length': String(b - a + 1), 'content-range': `bytes ${a}-${b}/${bytes.length}` }).end(bytes.subarray(a, b + 1))
    })
    await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve))
    const url = `https://127.0.0.1:${(srv.address() as AddressInfo).port}/c/blob`
    const child = fileURLToPath(new URL('../helpers/read-range.js', import.meta.url))
    const run = async (env: NodeJS.ProcessEnv) =>
      JSON.parse((await exec(process.execPath, [child, url, client, '0:4096', '100000:65536'], { env: { ...process.env, ...env } })).stdout) as {
        sha256?: string
        tokens?: number
        error?: string
        status?: number
      }
    try {
      const ok = await run({ NODE_EXTRA_CA_CERTS: caFile, READ_TOKEN: 'token-1' })
      t.is(ok.error, undefined)
      t.is(ok.sha256, sha(Buffer.concat([bytes.subarray(0, 4096), bytes.subarray(100_000, 165_536)])))
      t.is(ok.tokens, 1, 'one token for both requests')
      t.deepEqual(auth, ['Bearer token-1', 'Bearer token-1'])
      const wrong = await run({ NODE_EXTRA_CA_CERTS: caFile, READ_TOKEN: 'token-2' })
      t.is(wrong.status, 401)
      const untrusted = await run({ NODE_EXTRA_CA_CERTS: '', READ_TOKEN: 'token-1' })
      t.regex(untrusted.error ?? '', /certificate|SSL/i)
      t.is(auth.length, 3, 'no request reached the server over an unverified connection')
    } finally {
      await new Promise<void>((resolve) => srv.close(() => resolve()))
    }
  })
}
