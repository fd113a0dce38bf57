import test from 'ava'
import { BlockCache } from '../../src/storage/block-cache.js'
import { MemorySource } from '../helpers/memory-source.js'

const KIB = 1024
const BS = 64 * KIB

/** Resolves once nothing is in flight (readahead scheduled by a read is queued at once). */
async function settled(cache: BlockCache, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms
  while (cache.stats().inFlight > 0) {
    if (Date.now() > deadline) throw new Error(`still ${cache.stats().inFlight} block(s) in flight after ${ms} ms`)
    await new Promise((r) => setImmediate(r))
  }
}

/** Fails the test with a clear message instead of hanging until ava's global timeout. */
async function within<T>(ms: number, what: string, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms (deadlock?)`)), ms) })
  try {
    return await Promise.race([p, timeout])
  } finally {
    clearTimeout(timer)
  }
}

function randInt(n: number): number {
  return Math.floor(Math.random() * n)
}

test('random reads across block boundaries return exactly the source bytes', async (t) => {
  const source = new MemorySource(20 * BS + 1000) // a partial last block
  const cache = new BlockCache(source, { blockSize: BS, memoryBytes: 6 * BS, readaheadBlocks: 2 })
  const size = source.size
  const ranges: [number, number][] = [
    [0, 1], [BS - 1, 2], [BS - 1, BS + 2], [3 * BS - 10, 2 * BS + 20], [size - 1, 1], [size - 1000, 1000],
    [size - BS - 5, BS + 5], [19 * BS, 1000], [0, size], [7 * BS + 17, 4 * BS], [0, 0], [size, 0],
  ]
  for (let i = 0; i < 400; i++) {
    const off = randInt(size)
    ranges.push([off, Math.min(size - off, 1 + randInt(3 * BS))])
  }
  // In batches of concurrent readers, as FUSE issues them.
  for (let i = 0; i < ranges.length; i += 8) {
    const batch = ranges.slice(i, i + 8)
    const results = await within(20_000, 'random reads', Promise.all(batch.map(([o, l]) => cache.read(o, l))))
    batch.forEach(([o, l], j) => {
      const got = results[j]!
      if (got.length !== l || !got.equals(source.bytes.subarray(o, o + l))) t.fail(`wrong bytes for [${o}, +${l})`)
    })
  }
  t.is(cache.size, size)
  const s = cache.stats()
  t.true(s.peakBytes <= 6 * BS, `peak ${s.peakBytes}`)
  t.true(s.evictions > 0, 'the small budget forced evictions')
  t.pass()
})

test('concurrent reads spanning two blocks each complete even when together they exceed a tiny budget', async (t) => {
  const source = new MemorySource(16 * BS)
  source.delayMs = 20
  // The smallest budget the cache allows: 4 blocks. Four readers each need 2 blocks at once.
  const cache = new BlockCache(source, { blockSize: BS, memoryBytes: 4 * BS, readaheadBlocks: 0 })
  const reads = [0, 1, 2, 3, 4, 5].map((i) => {
    const off = (2 * i + 1) * BS - 100
    return cache.read(off, 200).then((b) => t.true(b.equals(source.bytes.subarray(off, off + 200)), `bytes at ${off}`))
  })
  await within(10_000, 'six two-block readers', Promise.all(reads))
  t.true(cache.stats().peakBytes <= 4 * BS)
})

test('reads past the end are rejected', async (t) => {
  const source = new MemorySource(4 * BS)
  const cache = new BlockCache(source, { blockSize: BS })
  await t.throwsAsync(cache.read(4 * BS - 1, 2), { instanceOf: RangeError })
  await t.throwsAsync(cache.read(-1, 2), { instanceOf: RangeError })
  t.is(source.reads, 0)
})

test('concurrent reads of the same missing block cause exactly one source read', async (t) => {
  const source = new MemorySource(16 * BS)
  source.delayMs = 30
  const cache = new BlockCache(source, { blockSize: BS, memoryBytes: 16 * BS })
  const block = 5
  const readers = Array.from({ length: 32 }, (_, i) => {
    const off = block * BS + (i * 2048) % BS
    return cache.read(off, 2048).then((b) => ({ off, b }))
  })
  const results = await within(10_000, 'concurrent readers', Promise.all(readers))
  for (const { off, b } of results) t.true(b.equals(source.bytes.subarray(off, off + 2048)), `bytes at ${off}`)
  t.is(source.readsAt(block * BS), 1, 'block 5 fetched once')
  t.is(source.readLog.filter((r) => r.offset <= block * BS + 2047 && r.offset + r.length > block * BS).length, 1, 'no other read overlapping block 5')
  const s = cache.stats()
  t.is(s.misses, 1)
  t.is(s.fetches, 1)
  // A later read of the cached block is a hit with no source read.
  const before = source.reads
  t.true((await cache.read(block * BS + 100, 100)).equals(source.bytes.subarray(block * BS + 100, block * BS + 200)))
  t.is(source.readsAt(block * BS), 1)
  t.is(cache.stats().hits, s.hits + 1)
  t.is(source.reads, before, 'the hit read nothing from the source')
})

test('sequential reads trigger readahead: blocks arrive before they are asked for', async (t) => {
  const blocks = 40
  const source = new MemorySource(blocks * BS)
  const cache = new BlockCache(source, { blockSize: BS, memoryBytes: 64 * BS, readaheadBlocks: 4 })
  const chunk = 16 * KIB
  // Read the first two blocks sequentially in small pieces.
  for (let off = 0; off < 2 * BS; off += chunk) t.true((await cache.read(off, chunk)).equals(source.bytes.subarray(off, off + chunk)))
  await settled(cache) // readahead lands
  const asked = 2
  t.true(source.reads > asked, `source saw ${source.reads} reads for ${asked} blocks asked`)
  t.truthy(source.readLog.find((r) => r.offset === 2 * BS), 'block 2 fetched ahead')
  const early = cache.stats()
  t.true(early.prefetches > 0, `prefetches ${early.prefetches}`)
  t.is(early.fetches, 1, 'only block 0 was a demand fetch')
  // The whole scan: every block fetched exactly once, most of them ahead of the reader.
  for (let off = 2 * BS; off < source.size; off += chunk) {
    const got = await cache.read(off, chunk)
    if (!got.equals(source.bytes.subarray(off, off + chunk))) t.fail(`bytes at ${off}`)
  }
  const s = cache.stats()
  for (let b = 0; b < blocks; b++) t.is(source.readsAt(b * BS), 1, `block ${b} fetched once`)
  t.is(s.fetches + s.prefetches, blocks)
  t.true(s.prefetches >= blocks - 4, `prefetches ${s.prefetches} of ${blocks}`)
  t.is(s.bytesFetched, source.size)
})

test('random reads do not trigger readahead', async (t) => {
  const blocks = 200
  const source = new MemorySource(blocks * BS)
  const cache = new BlockCache(source, { blockSize: BS, memoryBytes: 64 * BS, readaheadBlocks: 8 })
  let prev = -10
  const picked: number[] = []
  while (picked.length < 40) {
    const b = randInt(blocks)
    // Neither the same nor the next block as the previous read, and each block once (so each read is a miss).
    if (b === prev || b === prev + 1 || picked.includes(b)) continue
    picked.push(b)
    prev = b
  }
  for (const b of picked) {
    const off = b * BS + randInt(BS - 4096)
    t.true((await cache.read(off, 4096)).equals(source.bytes.subarray(off, off + 4096)))
  }
  // Readahead would have been queued by the reads themselves: nothing may be in flight now.
  t.is(cache.stats().inFlight, 0)
  const s = cache.stats()
  t.is(s.prefetches, 0)
  t.is(source.reads, picked.length, 'one source read per block asked, nothing more')
  t.is(s.misses, picked.length)
})

test('memory stays within the budget across a long scan with concurrent readers', async (t) => {
  const blocks = 300
  const budget = 8 * BS
  const source = new MemorySource(blocks * BS + 777)
  source.delayMs = 1
  const cache = new BlockCache(source, { blockSize: BS, memoryBytes: budget, readaheadBlocks: 16, concurrency: 4 })
  let maxResident = 0
  const sample = () => {
    const s = cache.stats()
    maxResident = Math.max(maxResident, (s.cachedBlocks + s.inFlight) * BS)
  }
  const scan = async (from: number, to: number, chunk: number) => {
    for (let off = from; off < to; off += chunk) {
      const len = Math.min(chunk, to - off)
      const got = await cache.read(off, len)
      sample()
      if (!got.equals(source.bytes.subarray(off, off + len))) throw new Error(`wrong bytes at ${off}`)
    }
  }
  const random = async (n: number) => {
    for (let i = 0; i < n; i++) {
      const off = randInt(source.size - 4096)
      const got = await cache.read(off, 4096)
      sample()
      if (!got.equals(source.bytes.subarray(off, off + 4096))) throw new Error(`wrong bytes at ${off}`)
    }
  }
  await within(60_000, 'long scan', Promise.all([
    scan(1000, source.size, 48 * KIB), // unaligned: crosses block boundaries
    scan(0, source.size, 128 * KIB),
    random(300),
  ]))
  const s = cache.stats()
  t.true(s.peakBytes <= budget, `peakBytes ${s.peakBytes} > budget ${budget}`)
  t.true(maxResident <= budget, `resident ${maxResident} > budget ${budget}`)
  t.true(s.evictions > 0)
  t.true(s.prefetches > 0)
  t.true(s.bytesFetched >= source.size, 'everything was fetched at least once')
  t.true(source.maxInFlight <= 4, `at most 4 requests at once, saw ${source.maxInFlight}`)
})

test('a failing source read rejects every waiting reader, and a later read retries', async (t) => {
  const source = new MemorySource(8 * BS)
  source.delayMs = 30
  const cache = new BlockCache(source, { blockSize: BS, memoryBytes: 8 * BS, readaheadBlocks: 0 })
  source.failReads = true
  const block = 3
  const readers = Array.from({ length: 6 }, (_, i) => cache.read(block * BS + i * 1000, 1000))
  const settled = await within(10_000, 'failing readers', Promise.allSettled(readers))
  for (const r of settled) {
    t.is(r.status, 'rejected')
    if (r.status === 'rejected') t.regex(String((r.reason as Error).message), /injected read failure/)
  }
  t.is(source.readsAt(block * BS), 1, 'one fetch shared by all six readers')
  t.is(cache.stats().cachedBlocks, 0, 'the failure is not cached')
  t.is(cache.stats().inFlight, 0)
  source.failReads = false
  const off = block * BS + 12345
  t.true((await cache.read(off, 5000)).equals(source.bytes.subarray(off, off + 5000)))
  t.is(source.readsAt(block * BS), 2, 'the later read went to the source again')
  t.is(cache.stats().cachedBlocks, 1)
})

test('a failed readahead does not poison the blocks it was fetching', async (t) => {
  const source = new MemorySource(16 * BS)
  const cache = new BlockCache(source, { blockSize: BS, memoryBytes: 16 * BS, readaheadBlocks: 4 })
  t.true((await cache.read(0, 4096)).equals(source.bytes.subarray(0, 4096)))
  source.failReads = true
  // Sequential: this starts readahead of the blocks after 0, all of which fail.
  await t.throwsAsync(cache.read(BS, 4096), { message: /injected read failure/ })
  await settled(cache)
  t.true(cache.stats().prefetches > 0, 'readahead was attempted')
  source.failReads = false
  for (let off = BS; off < source.size; off += 32 * KIB) {
    const got = await cache.read(off, 32 * KIB)
    if (!got.equals(source.bytes.subarray(off, off + 32 * KIB))) t.fail(`bytes at ${off}`)
  }
  t.pass()
})

test('close() closes the inner source and later reads are refused', async (t) => {
  const source = new MemorySource(4 * BS)
  const cache = new BlockCache(source, { blockSize: BS })
  await cache.read(0, 10)
  t.false(source.closed)
  await cache.close()
  t.true(source.closed)
  await t.throwsAsync(cache.read(0, 10), { message: /closed/ })
})

test('block sizes that are not a multiple of 512 or below 4 KiB are refused', (t) => {
  const source = new MemorySource(64 * KIB)
  t.throws(() => new BlockCache(source, { blockSize: 1000 }), { instanceOf: RangeError })
  t.throws(() => new BlockCache(source, { blockSize: 2048 }), { instanceOf: RangeError })
  t.throws(() => new BlockCache(source, { blockSize: 4096 + 100 }), { instanceOf: RangeError })
  t.notThrows(() => new BlockCache(source, { blockSize: 4096 + 512 }))
})
