import test from 'ava'
import { randomBytes } from 'node:crypto'
import { cacheOver } from '../../src/cache/cache-over.js'
import { isWritable, type WritableRangeSource } from '../../src/storage/range-source.js'
import { GatheringMemorySource, WritableMemorySource } from '../helpers/memory-source.js'
import { Random } from '../helpers/random.js'
import { conformance } from '../storage/conformance.js'
import { sameBytes } from '../helpers/bytes.js'
import { within } from '../helpers/time.js'

const KiB = 1024
const opts = { blockSize: 64 * KiB, memoryBytes: 512 * KiB, readaheadBlocks: 0, writeBackIntervalMs: 60_000 }

// Unaligned writes over a source that takes only whole 512-byte sectors (as a page blob), in a
// budget smaller than what is written: partial sectors are read first, dirty ranges written back.
// Over a writer that snapshots each write-back, and one that is sent the ranges themselves.
for (const [name, Source, seed] of [
  ['a WritableMemorySource', WritableMemorySource, 21],
  ['a gathering writer (write-backs send the ranges themselves)', GatheringMemorySource, 22],
] as const) {
  conformance({
    name: `WritableBlockCache over ${name}`,
    writable: true,
    open: async () => {
      const source = new Source(new Random(seed).bytes(2 * 1024 * KiB))
      const cache = cacheOver(source, { ...opts, memoryBytes: 256 * KiB })
      return { source: cache, bytes: Buffer.from(source.bytes), readsBelow: () => source.reads, closedBelow: () => source.closed, persisted: async () => Buffer.from(source.bytes) }
    },
  })
}

test('writes are read back at once and reach the source, 512-aligned and coalesced per block, on flush', async (t) => {
  const src = new WritableMemorySource(1024 * KiB)
  const cache = cacheOver(src, opts)
  const a = randomBytes(100)
  const b = randomBytes(3000)
  await cache.write(10, a)
  await cache.write(700, b)
  t.deepEqual(await cache.read(10, 100), a)
  t.notDeepEqual(src.bytes.subarray(10, 110), a, 'not on the source before the flush')
  await cache.flush()
  t.deepEqual(src.bytes.subarray(10, 110), a)
  t.deepEqual(src.bytes.subarray(700, 3700), b)
  t.deepEqual(src.writeLog, [{ offset: 0, length: 4096 }], 'one write for the block, 512-aligned, covering both')
  t.is(cache.stats().dirtyBlocks, 0)
  await cache.close()
})

test('a write across blocks is written back joined, in 512-aligned pieces of at most 4 MiB, without reading what it covers', async (t) => {
  const src = new WritableMemorySource(16 * 1024 * KiB)
  const cache = cacheOver(src, opts)
  const data = randomBytes(300 * KiB)
  await cache.write(50 * KiB, data)
  await cache.flush()
  sameBytes(t, src.bytes.subarray(50 * KiB, 350 * KiB), data)
  t.is(cache.stats().writeBacks, 1, 'adjacent ranges in several blocks make one write-back')
  t.is(src.reads, 0, 'whole sectors written need no read')
  await cache.close()
  // 9 MiB in 1 MiB writes, as FUSE sends them: joined, cut at 4 MiB, and whole pieces streamed
  // out while the writer goes on, so that the flush finds only the tail left.
  const roomy = cacheOver(src, { ...opts, blockSize: 2048 * KiB, memoryBytes: 32 * 1024 * KiB })
  const big = randomBytes(9 * 1024 * KiB)
  const before = src.writeLog.length
  for (let off = 0; off < big.length; off += 1024 * KiB) await roomy.write(4 * 1024 * KiB + off, big.subarray(off, off + 1024 * KiB))
  // Nothing else writes back here (no timer, no flush yet): a landed write was streamed out as the writer went on.
  await within(5000, 'a whole 4 MiB piece written back before the flush', src.writesLanded(before + 1))
  const early = src.writeLog.length - before
  t.true(early >= 1, 'whole 4 MiB pieces went out before the flush')
  await roomy.flush()
  t.deepEqual(
    src.writeLog
      .slice(before)
      .map((w) => w.length)
      .sort((a, b) => a - b),
    [1024 * KiB, 4096 * KiB, 4096 * KiB],
  )
  t.deepEqual(
    src.writeLog.slice(before + early).map((w) => w.length),
    [1024 * KiB],
    'the flush wrote the tail only',
  )
  sameBytes(t, src.bytes.subarray(4 * 1024 * KiB, 13 * 1024 * KiB), big)
  // A write that does not cover whole sectors reads them first.
  await roomy.write(14 * 1024 * KiB + 100, Buffer.from('x'))
  t.is(src.reads, 1)
  t.deepEqual(src.readLog[0], { offset: 14 * 1024 * KiB, length: 512 })
  await roomy.close()
})

test('a failing write-back rejects the flush, keeps the data dirty, and the next flush delivers it', async (t) => {
  const src = new WritableMemorySource(512 * KiB)
  const cache = cacheOver(src, opts)
  const data = randomBytes(5000)
  await cache.write(4096, data)
  src.failWrites = true
  const err = await t.throwsAsync(cache.flush())
  t.is((err as { code?: string }).code, 'STORAGE_WRITE_FAILED')
  t.is(cache.stats().dirtyBlocks, 1)
  t.is(cache.stats().writeFailures, 1)
  t.deepEqual(await cache.read(4096, 5000), data, 'still readable from memory')
  src.failWrites = false
  await cache.flush()
  t.deepEqual(src.bytes.subarray(4096, 9096), data)
  await cache.close()
})

test('dirty blocks are never evicted: writing more than the memory budget writes back instead of losing data', async (t) => {
  const src = new WritableMemorySource(4096 * KiB)
  const cache = cacheOver(src, opts)
  const data = randomBytes(2048 * KiB)
  for (let off = 0; off < data.length; off += 32 * KiB) await cache.write(off, data.subarray(off, off + 32 * KiB))
  t.true(cache.stats().peakBytes <= 512 * KiB)
  await cache.flush()
  sameBytes(t, src.bytes.subarray(0, 2048 * KiB), data)
  await cache.close()
})

test('short of memory, whole 4 MiB pieces are written back first and the gaps of out-of-order writes are left to fill', async (t) => {
  // FUSE delivers a writer's requests on several threads, so they arrive out of order (in the
  // bench, write-backs averaged 2.2 MiB as memory ran short with holes still open).
  const MiB = 1024 * KiB
  const src = new WritableMemorySource(16 * MiB)
  const cache = cacheOver(src, { ...opts, blockSize: MiB, memoryBytes: 6 * MiB })
  const data = randomBytes(12 * MiB)
  const put = (mib: number) => cache.write(mib * MiB, data.subarray(mib * MiB, (mib + 1) * MiB))
  for (const mib of [1, 2, 3, 5, 0, 7, 8, 9, 4, 6, 11, 10]) await put(mib)
  const early = src.writeLog.map((w) => w.length / MiB)
  await cache.flush()
  t.true(early.length > 0, 'memory ran short: something was written back before the flush')
  t.deepEqual(
    early.filter((n) => n !== 4),
    [],
    `written back before the flush (MiB): ${early.join(', ')}`,
  )
  sameBytes(t, src.bytes.subarray(0, 12 * MiB), data)
  await cache.close()
})

test('a gathering writer is sent the ranges themselves; a range written again on the way is copied, so storage gets the older bytes, then the newer', async (t) => {
  const src = new GatheringMemorySource(1024 * KiB)
  src.delayMs = 30
  const cache = cacheOver(src, opts)
  const older = randomBytes(128 * KiB)
  const newer = randomBytes(128 * KiB)
  await cache.write(0, older)
  const first = cache.flush()
  await new Promise(setImmediate)
  t.is(cache.stats().dirtyBlocks, 0, 'the write-back is on its way')
  await cache.write(0, newer)
  sameBytes(t, await cache.read(0, 128 * KiB), newer)
  await first
  sameBytes(t, src.gathered[0]!, older, 'the write-back sent the bytes it started with')
  await cache.flush()
  sameBytes(t, src.bytes.subarray(0, 128 * KiB), newer)
  t.false(src.writeLog.some((w) => w.length > 4096 * KiB))
  await cache.close()
})

test('close flushes what is dirty; a read-only source gives a cache without write()', async (t) => {
  const src = new WritableMemorySource(256 * KiB)
  const cache = cacheOver(src, opts)
  const data = randomBytes(1000)
  await cache.write(2048, data)
  await cache.close()
  t.deepEqual(src.bytes.subarray(2048, 3048), data)
  const { MemorySource } = await import('../helpers/memory-source.js')
  const readOnly = cacheOver(new MemorySource(64 * KiB), opts)
  t.false(isWritable(readOnly))
  t.is((readOnly as Partial<WritableRangeSource>).write, undefined)
})

test('the timer writes dirty data back without a flush', async (t) => {
  const src = new WritableMemorySource(256 * KiB)
  const cache = cacheOver(src, { ...opts, writeBackIntervalMs: 50 })
  const data = randomBytes(512)
  const started = Date.now()
  await cache.write(0, data)
  const at = await within(
    5000,
    'the write-back by the timer',
    src.writesLanded(1).then(() => Date.now()),
  )
  t.true(at - started >= 40, `written back by the timer after ${at - started} ms, not at once`)
  t.deepEqual(src.bytes.subarray(0, 512), data)
  await cache.close()
})

test('an fsync on storage that takes writes and never answers fails within its bound; the next ones, while it stays down, within the short bound; nothing is lost', async (t) => {
  const src = new WritableMemorySource(512 * KiB)
  const cache = cacheOver(src, { ...opts, flushTimeoutMs: 400, downFlushTimeoutMs: 100 })
  const data = randomBytes(8192)
  await cache.write(0, data)
  let answer!: () => void
  src.hold = new Promise((resolve) => {
    answer = resolve
  })
  const first = Date.now()
  const err = await within(5000, 'the first fsync on storage that does not answer', t.throwsAsync(cache.flush()))
  const firstMs = Date.now() - first
  t.is((err as { code?: string }).code, 'STORAGE_WRITE_FAILED')
  t.regex(err!.message, /storage took no answer to the write-backs within 0\.4 s/)
  t.true(firstMs >= 350 && firstMs < 2000, `failed after ${firstMs} ms`)
  const second = Date.now()
  await within(5000, 'the second fsync', t.throwsAsync(cache.flush(), { message: /within 0\.1 s.*storage failed a write-back \d+ ms ago/ }))
  t.true(Date.now() - second < 400, `the second fsync failed after ${Date.now() - second} ms: storage was known down`)
  src.hold = undefined
  answer()
  await within(5000, 'the flush once storage answers', cache.flush())
  t.deepEqual(src.bytes.subarray(0, 8192), data, 'what was written arrived')
  await cache.close()
})

test('closing when write-backs cannot land: the source below is closed anyway, and the error lists exactly the bytes that were lost', async (t) => {
  const src = new WritableMemorySource(512 * KiB)
  const cache = cacheOver(src, { ...opts, flushTimeoutMs: 200, downFlushTimeoutMs: 100 })
  await cache.write(4096, randomBytes(5000))
  await cache.write(100_000, randomBytes(1000))
  src.failWrites = true
  const err = await within(5000, 'close', t.throwsAsync(cache.close()))
  t.is((err as { code?: string }).code, 'STORAGE_WRITE_DROPPED')
  // By whole sectors: 5000 bytes at 4096 and 1000 at 100000 touch these.
  t.regex(
    err!.message,
    /^6656 bytes in 2 range\(s\) were not written to storage and are lost: 4096-9215, 99840-101375 \(whole 512-byte sectors of the image\); the last failure: injected write failure$/,
  )
  t.true(src.closed, 'the source below was closed (a lease released, a volume key zeroed)')
})
