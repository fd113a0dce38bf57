import test from 'ava'
import { randomBytes } from 'node:crypto'
import { writeFile } from 'node:fs/promises'
import path from 'node:path'
import { uploadFile, blobSas, freePort, type Azurite } from '../helpers/azurite.js'
import { E2eFixture } from '../helpers/e2e.js'
import { BlobSource } from '../../src/storage/blob-source.js'
import { cacheOver } from '../../src/cache/cache-over.js'
import { conformance } from './conformance.js'
import { openSource } from '../../src/storage/open-source.js'
import { StorageError } from '../../src/storage/errors.js'
import { redactUrl } from '../../src/log/redact.js'
import { pino } from 'pino'
import { startFaultProxy, takeOverLease } from '../helpers/fault-proxy.js'
import { within } from '../helpers/time.js'
import { STOP_WRITE_GRACE_MS } from '../../src/storage/stop-gate.js'

const SIZE = 5 * 1024 * 1024 + 1234 // not a multiple of 512: the page blob gets padded

let az: Azurite
let dir: string
let file: string
let bytes: Buffer

// Azurite and the temporary directory: started before the file's tests, stopped and removed after.
const fx = new E2eFixture(test)

test.before(async () => {
  az = await fx.azurite()
  dir = await fx.tempDir('encfs-blob-source-')
  bytes = randomBytes(SIZE)
  file = path.join(dir, 'image.img')
  await writeFile(file, bytes)
})

const sasFor = (container: string, blob: string, permissions = 'r') => blobSas(az, container, blob, permissions)

/** The message (and stack, which repeats it) never carries the SAS signature. */
function assertNoSas(t: { false(v: boolean, m?: string): void }, err: Error | undefined, sig?: string): void {
  t.false(String(err?.message).includes('sig='), `sig= in message: ${err?.message}`)
  t.false(String(err?.stack).includes('sig='), 'sig= in stack')
  if (sig) t.false(String(err?.message).includes(sig), 'the signature value in the message')
}

function sigOf(url: string): string {
  return new URL(url).searchParams.get('sig') ?? ''
}

// Read-only subjects share one upload each (what Azurite does with 5 MiB is most of their cost).
let publicBlob: Promise<{ url: string }> | undefined
let privateBlob: Promise<{ sasUrl: string }> | undefined

conformance({
  name: 'BlobSource (a block blob in a public container, read anonymously)',
  open: async () => {
    publicBlob ??= uploadFile(az, file, { kind: 'block', publicAccess: true })
    return { source: await openSource((await publicBlob).url), bytes }
  },
})

conformance({
  name: 'BlockCache over a BlobSource (a SAS URL to a private container)',
  open: async () => {
    privateBlob ??= uploadFile(az, file, { kind: 'block' })
    const source = await openSource((await privateBlob).sasUrl)
    return { source: cacheOver(source, { blockSize: 1024 * 1024, memoryBytes: 4 * 1024 * 1024, readaheadBlocks: 2 }), bytes }
  },
})

// Put Page goes through either HTTP client (src/storage/native-page-put.ts): both must be durable.
for (const http of ['native', 'node'] as const) {
  conformance({
    name: `WritableBlobSource (a leased page blob, SAS sp=rw, Put Page on ${http})`,
    writable: true,
    writeUnit: 512,
    open: async () => {
      const small = bytes.subarray(0, 1024 * 1024)
      const smallFile = path.join(dir, `small-${Date.now()}-${Math.random()}.img`)
      await writeFile(smallFile, small)
      const { url, sasUrl } = await uploadFile(az, smallFile, { kind: 'page' })
      const source = await openSource(sasUrl, { writable: { leaseIdFile: `${smallFile}.lease` }, http })
      const name = decodeURIComponent(new URL(url).pathname.split('/').pop()!)
      return { source, bytes: small, persisted: () => az.service.getContainerClient('private').getBlobClient(name).downloadToBuffer() }
    },
  })
}

test('Put Page on libcurl gathers a write from several buffers: one request, the bytes end to end in the blob', async (t) => {
  const small = Buffer.alloc(1024 * 1024)
  const smallFile = path.join(dir, `gather-${Date.now()}.img`)
  await writeFile(smallFile, small)
  const { url, sasUrl } = await uploadFile(az, smallFile, { kind: 'page' })
  const source = await BlobSource.open({ url: sasUrl, http: 'native', writable: { leaseIdFile: `${smallFile}.lease` } })
  t.teardown(() => source.close())
  const parts = [randomBytes(512), randomBytes(64 * 1024), randomBytes(3 * 512)]
  t.is(typeof source.writeParts, 'function')
  await source.writeParts!(4096, parts)
  const name = decodeURIComponent(new URL(url).pathname.split('/').pop()!)
  const stored = await az.service.getContainerClient('private').getBlobClient(name).downloadToBuffer()
  t.deepEqual(stored.subarray(4096, 4096 + 66 * 1024), Buffer.concat(parts))
  t.is(
    stored.subarray(0, 4096).some((b) => b !== 0),
    false,
    'nothing before it',
  )
  // The SDK's Put Page takes one buffer: no gathering there (the cache snapshots instead).
  const viaSdk = await BlobSource.open({ url: sasUrl, http: 'node', writable: { leaseIdFile: `${smallFile}.lease` } })
  t.is(viaSdk.writeParts, undefined)
  await viaSdk.close()
})

test('a block blob says what it is: kind, type, size and the ETag it pins', async (t) => {
  const { url } = await uploadFile(az, file, { kind: 'block', publicAccess: true })
  const src = await openSource(url)
  try {
    t.is(src.kind, 'blob')
    t.is(src.blobType, 'BlockBlob')
    t.is(src.size, SIZE)
    t.truthy(src.etag)
  } finally {
    await src.close()
  }
})

test('a page blob reads byte for byte, padded with zeros to 512 bytes', async (t) => {
  const { url } = await uploadFile(az, file, { kind: 'page', publicAccess: true })
  const src = await openSource(url)
  try {
    t.is(src.blobType, 'PageBlob')
    const padded = Math.ceil(SIZE / 512) * 512
    t.is(src.size, padded)
    t.true((await src.read(0, SIZE)).equals(bytes), 'the file as uploaded')
    t.true((await src.read(SIZE, padded - SIZE)).equals(Buffer.alloc(padded - SIZE)), 'padding is zeros')
  } finally {
    await src.close()
  }
})

test('a missing blob is STORAGE_NOT_FOUND naming the blob URL without its SAS', async (t) => {
  const container = az.service.getContainerClient('private')
  await container.createIfNotExists()
  const name = `missing-${Date.now()}.img`
  const plain = container.getBlobClient(name).url
  const sasUrl = `${plain}?${sasFor('private', name)}`
  const err = await t.throwsAsync(openSource(sasUrl), { instanceOf: StorageError })
  t.is(err?.code, 'STORAGE_NOT_FOUND')
  t.true(String(err?.message).includes(plain), String(err?.message))
  t.regex(String(err?.message), /Check the account, container and blob names/)
  assertNoSas(t, err, sigOf(sasUrl))
  // Anonymous, in a public container: the same code.
  await uploadFile(az, file, { kind: 'block', publicAccess: true })
  const publicMissing = az.service.getContainerClient('public').getBlobClient(name).url
  const err2 = await t.throwsAsync(openSource(publicMissing), { instanceOf: StorageError })
  t.is(err2?.code, 'STORAGE_NOT_FOUND')
  t.true(String(err2?.message).includes(publicMissing))
})

test('a SAS signed for another blob is STORAGE_ACCESS_DENIED with a hint and without the SAS', async (t) => {
  const a = await uploadFile(az, file, { kind: 'block' })
  const b = await uploadFile(az, file, { kind: 'block' })
  const wrong = `${b.url}?${new URL(a.sasUrl).search.slice(1)}`
  const err = await t.throwsAsync(openSource(wrong), { instanceOf: StorageError })
  t.is(err?.code, 'STORAGE_ACCESS_DENIED')
  t.true(String(err?.message).includes(b.url), String(err?.message))
  t.regex(String(err?.message), /HTTP 403/)
  t.regex(String(err?.message), /the SAS in azure_url/)
  t.regex(String(err?.message), /Check the SAS permissions and expiry/)
  assertNoSas(t, err, sigOf(wrong))
})

test('a blob in a private container read without credentials is STORAGE_ACCESS_DENIED with a hint', async (t) => {
  const { url } = await uploadFile(az, file, { kind: 'block' })
  const err = await t.throwsAsync(openSource(url), { instanceOf: StorageError })
  t.is(err?.code, 'STORAGE_ACCESS_DENIED', String(err?.message))
  t.true(String(err?.message).includes(url))
  t.regex(String(err?.message), /anonymous access/)
  t.regex(String(err?.message), /public access level/)
})

test('a block blob overwritten after open fails reads with STORAGE_BLOB_CHANGED instead of mixing versions', async (t) => {
  const { url, sasUrl } = await uploadFile(az, file, { kind: 'block', publicAccess: true })
  const src = await openSource(sasUrl)
  try {
    t.true((await src.read(1000, 1000)).equals(bytes.subarray(1000, 2000)))
    const name = decodeURIComponent(new URL(url).pathname.split('/').pop()!)
    const other = randomBytes(SIZE)
    await az.service.getContainerClient('public').getBlockBlobClient(name).uploadData(other)
    for (const off of [0, 1000, SIZE - 4096]) {
      const err = await t.throwsAsync(src.read(off, 4096), { instanceOf: StorageError })
      t.is(err?.code, 'STORAGE_BLOB_CHANGED')
      t.true(String(err?.message).includes(url))
      t.regex(String(err?.message), /restart remotefs/)
      assertNoSas(t, err, sigOf(sasUrl))
    }
    // A fresh open sees the new version.
    const again = await openSource(url)
    t.not(again.etag, src.etag)
    t.true((await again.read(0, 4096)).equals(other.subarray(0, 4096)))
    await again.close()
  } finally {
    await src.close()
  }
})

test('a page blob written in place after open fails reads with STORAGE_BLOB_CHANGED', async (t) => {
  const { url } = await uploadFile(az, file, { kind: 'page', publicAccess: true })
  const src = await openSource(url)
  try {
    t.true((await src.read(0, 512)).equals(bytes.subarray(0, 512)))
    const name = decodeURIComponent(new URL(url).pathname.split('/').pop()!)
    await az.service.getContainerClient('public').getPageBlobClient(name).uploadPages(Buffer.alloc(512, 0xab), 512, 512)
    const err = await t.throwsAsync(src.read(0, 4096), { instanceOf: StorageError })
    t.is(err?.code, 'STORAGE_BLOB_CHANGED')
  } finally {
    await src.close()
  }
})

test('an unreachable server is STORAGE_UNREACHABLE naming the host, without the SAS', async (t) => {
  const port = await freePort() // nothing listens there
  const url = `http://127.0.0.1:${port}/devstoreaccount1/private/image.img?sv=2024-08-04&sr=b&sp=r&sig=SECRETSIGNATURE`
  const started = Date.now()
  const err = await t.throwsAsync(BlobSource.open({ url, maxTries: 2, tryTimeoutMs: 5000 }), { instanceOf: StorageError })
  t.is(err?.code, 'STORAGE_UNREACHABLE', String(err?.message))
  t.true(String(err?.message).includes(`127.0.0.1:${port}`), String(err?.message))
  assertNoSas(t, err, 'SECRETSIGNATURE')
  t.true(Date.now() - started < 30_000)
  // The same through openSource (default retries).
  const err2 = await t.throwsAsync(openSource(url), { instanceOf: StorageError })
  t.is(err2?.code, 'STORAGE_UNREACHABLE')
  assertNoSas(t, err2, 'SECRETSIGNATURE')
})

test('redactUrl removes the SAS of a real Azurite SAS URL', async (t) => {
  const { url, sasUrl } = await uploadFile(az, file, { kind: 'block' })
  const r = redactUrl(sasUrl)
  t.true(r.startsWith(url))
  t.false(r.includes('sig='))
  t.false(r.includes(sigOf(sasUrl)))
  t.false(r.includes(encodeURIComponent(sigOf(sasUrl))))
})

test('a lease held by another writer is waited for (the wait is logged) and taken once released; no wait at all: STORAGE_LEASED at once', async (t) => {
  const { sasUrl, url } = await uploadFile(az, file, { kind: 'page' })
  const name = decodeURIComponent(new URL(url).pathname.split('/').pop()!)
  const other = az.service.getContainerClient('private').getBlobClient(name).getBlobLeaseClient()
  await other.acquireLease(-1)
  const leaseIdFile = path.join(dir, `lease-${name}`)
  const refused = await t.throwsAsync(BlobSource.open({ url: sasUrl, writable: { leaseIdFile, leaseWaitMs: 0 } }), { instanceOf: StorageError })
  t.is(refused?.code, 'STORAGE_LEASED')
  t.regex(String(refused?.message), /leased by another writer/)
  // The other writer lets go as soon as this one says it waits: the open then succeeds.
  const lines: string[] = []
  const logger = pino(
    { level: 'info' },
    {
      write: (line: string) => {
        lines.push(line)
        if (line.includes('waiting for the lease')) void other.releaseLease()
      },
    },
  )
  const src = await BlobSource.open({ url: sasUrl, logger, writable: { leaseIdFile, leaseWaitMs: 30_000 } })
  try {
    t.true(
      lines.some((l) => l.includes('the blob is leased by another writer; waiting')),
      'the wait is logged',
    )
    t.true(lines.some((l) => l.includes('lease held')))
    await src.write(0, Buffer.alloc(512, 1))
    t.true((await src.read(0, 512)).equals(Buffer.alloc(512, 1)))
  } finally {
    await src.close()
  }
})

test('waiting for a lease ends at once when the caller aborts', async (t) => {
  const { sasUrl, url } = await uploadFile(az, file, { kind: 'page' })
  const name = decodeURIComponent(new URL(url).pathname.split('/').pop()!)
  const other = az.service.getContainerClient('private').getBlobClient(name).getBlobLeaseClient()
  await other.acquireLease(-1)
  const ac = new AbortController()
  const logger = pino(
    { level: 'info' },
    {
      write: (line: string) => {
        if (line.includes('waiting for the lease')) ac.abort()
      },
    },
  )
  const started = Date.now()
  const err = await t.throwsAsync(BlobSource.open({ url: sasUrl, logger, signal: ac.signal, writable: { leaseIdFile: path.join(dir, `lease-${name}`), leaseWaitMs: 60_000 } }))
  t.true(Date.now() - started < 10_000, `ended after ${Date.now() - started} ms`)
  t.regex(String(err?.message), /abort/i)
  await other.releaseLease()
})

test('another writer taking the lease fences the source: its bytes are refused (never read), writes too, and the status says why', async (t) => {
  const { sasUrl, url } = await uploadFile(az, file, { kind: 'page' })
  const name = decodeURIComponent(new URL(url).pathname.split('/').pop()!)
  const src = await BlobSource.open({ url: sasUrl, writable: { leaseIdFile: path.join(dir, `lease-fenced-${name}`) } })
  try {
    await src.write(0, Buffer.alloc(512, 7))
    t.deepEqual(src.leaseStatus(), { held: true })
    const other = await takeOverLease(sasUrl, 4096, randomBytes(64 * 1024))
    const read = await t.throwsAsync(src.read(4096, 4096), { instanceOf: StorageError })
    t.is(read?.code, 'STORAGE_LEASE_LOST', read?.message)
    t.regex(String(read?.message), /no longer holds the write lease on .* \(Lease\w+\)/)
    const write = await t.throwsAsync(src.write(0, Buffer.alloc(512, 8)), { instanceOf: StorageError })
    t.is(write?.code, 'STORAGE_LEASE_LOST')
    const status = src.leaseStatus()
    t.false(status.held)
    t.regex(status.reason ?? '', /another writer broke or took it/)
    await src.close()
    t.is((await az.service.getContainerClient('private').getBlobClient(name).getProperties()).leaseState, 'leased', "the other writer's lease is not released by this one")
    await az.service.getContainerClient('private').getBlobClient(name).getBlobLeaseClient(other).releaseLease()
  } finally {
    await src.close()
  }
})

test('when remotefs stops, reads in flight end at once and no read goes out any more; writes get a grace, then the same', async (t) => {
  const { sasUrl, url } = await uploadFile(az, file, { kind: 'page' })
  const name = decodeURIComponent(new URL(url).pathname.split('/').pop()!)
  const proxy = await startFaultProxy({ port: Number(new URL(sasUrl).port) })
  t.teardown(() => proxy.stop())
  const stop = new AbortController()
  const src = await BlobSource.open({ url: proxy.via(sasUrl), signal: stop.signal, writable: { leaseIdFile: path.join(dir, `lease-stop-${name}`) } })
  try {
    proxy.stall((req) => req.method === 'GET' || /comp=page/.test(req.url ?? ''))
    const reading = src.read(0, 4096)
    const writing = src.write(0, Buffer.alloc(4096, 1))
    await within(
      10_000,
      'both requests to reach the stalled server',
      (async () => {
        while (proxy.stalled.waiting < 2) await new Promise((r) => setTimeout(r, 20))
      })(),
    )
    const stopped = Date.now()
    stop.abort()
    const read = await within(2000, 'the pending read to end', t.throwsAsync(reading, { instanceOf: StorageError }))
    t.is(read?.code, 'STORAGE_ABORTED')
    t.true(Date.now() - stopped < 1000, `the read ended ${Date.now() - stopped} ms after the stop`)
    const write = await within(STOP_WRITE_GRACE_MS + 3000, 'the pending write to end', t.throwsAsync(writing, { instanceOf: StorageError }))
    t.is(write?.code, 'STORAGE_ABORTED')
    const ms = Date.now() - stopped
    t.true(ms >= STOP_WRITE_GRACE_MS - 100 && ms < STOP_WRITE_GRACE_MS + 2000, `the write ended ${ms} ms after the stop, after its grace`)
    await t.throwsAsync(src.write(0, Buffer.alloc(512)), { message: /write-backs had 5 s and are no longer sent/ })
    proxy.unstall()
  } finally {
    await src.close()
  }
})

test('storage that answers without an ETag is not said to be pinned; one that answers a pinned read with another ETag is refused (Node.js client)', async (t) => {
  const { sasUrl } = await uploadFile(az, file, { kind: 'block' })
  const proxy = await startFaultProxy({ port: Number(new URL(sasUrl).port) })
  t.teardown(() => proxy.stop())
  const lines: string[] = []
  const logger = pino({ level: 'info' }, { write: (l: string) => void lines.push(l) })
  proxy.rewrite({
    response: (h, req) => {
      if (req.method === 'HEAD') delete h.etag
    },
  })
  const unpinned = await BlobSource.open({ url: proxy.via(sasUrl), logger, http: 'node' })
  t.is(unpinned.etag, '')
  t.false(
    lines.some((l) => l.includes('ETag pinned')),
    'no claim of a pin',
  )
  t.true(lines.some((l) => l.includes('storage sent no ETag: nothing can be pinned')))
  await unpinned.close()

  proxy.rewrite(undefined)
  const pinned = await BlobSource.open({ url: proxy.via(sasUrl), http: 'node' })
  // Another version answered: the server drops If-Match and names another ETag.
  proxy.rewrite({
    request: (h) => {
      delete h['if-match']
    },
    response: (h, req) => {
      if (req.method === 'GET') h.etag = '"0x8DC0FFEE0000000"'
    },
  })
  const err = await t.throwsAsync(pinned.read(0, 4096), { instanceOf: StorageError })
  t.is(err?.code, 'STORAGE_BLOB_CHANGED')
  t.regex(String((err?.cause as Error | undefined)?.message), /answered a read pinned to ETag .* with ETag "0x8DC0FFEE0000000"/)
  await pinned.close()
})

test('a lease taken over while nothing is read is found lost at the next renewal (a third of the lease period)', async (t) => {
  const { sasUrl, url } = await uploadFile(az, file, { kind: 'page' })
  const name = decodeURIComponent(new URL(url).pathname.split('/').pop()!)
  const lines: string[] = []
  const logger = pino({ level: 'info' }, { write: (l: string) => void lines.push(l) })
  // 15 s leases: renewed every 5 s.
  const src = await BlobSource.open({ url: sasUrl, logger, writable: { leaseIdFile: path.join(dir, `lease-renew-${name}`), leaseSeconds: 15 } })
  try {
    const other = await takeOverLease(sasUrl, 0, Buffer.alloc(512, 9))
    t.teardown(() => az.service.getContainerClient('private').getBlobClient(name).getBlobLeaseClient(other).releaseLease())
    const started = Date.now()
    await within(
      10_000,
      'the renewal to find the lease lost',
      (async () => {
        while (src.leaseStatus().held) await new Promise((r) => setTimeout(r, 50))
      })(),
    )
    t.true(Date.now() - started <= 6_000, `found after ${Date.now() - started} ms`)
    t.true(lines.some((l) => l.includes('LEASE LOST') && l.includes('renewing the lease')))
    await t.throwsAsync(src.read(0, 512), { message: /no longer holds the write lease/ })
  } finally {
    await src.close()
  }
})
