import test from 'ava'
import { BlockCache } from '../../src/cache/block-cache.js'
import { cacheOver } from '../../src/cache/cache-over.js'
import type { CacheMirror } from '../../src/storage/native-view.js'
import { MemorySource } from '../helpers/memory-source.js'
import { Random, randomFor } from '../helpers/random.js'
import { within } from '../helpers/time.js'
import { conformance } from '../storage/conformance.js'

const KIB = 1024
const BS = 64 * KIB

/** Resolves once nothing is in flight (readahead scheduled by a read is queued at once). */
async function settled(cache: BlockCache, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms
  while (cache.stats().inFlight > 0) {
    if (Date.now() > deadline) throw new Error(`still ${cache.stats().inFlight} range(s) in flight after ${ms} ms`)
    await new Promise((r) => setImmediate(r))
  }
}

/** No byte of the source was fetched twice. */
function overlaps(log: readonly { offset: number; length: number }[]): string[] {
  const sorted = [...log].sort((a, b) => a.offset - b.offset)
  const out: string[] = []
  for (let i = 1; i < sorted.length; i++) {
    const a = sorted[i - 1]!
    const b = sorted[i]!
    if (b.offset < a.offset + a.length) out.push(`[${a.offset}, +${a.length}) and [${b.offset}, +${b.length})`)
  }
  return out
}

// A small budget and blocks: the contract holds while ranges are evicted and fetched again.
conformance({
  name: 'BlockCache over a MemorySource',
  open: async () => {
    const source = new MemorySource(new Random(20).bytes(20 * BS + 1000))
    const cache = cacheOver(source, { blockSize: BS, memoryBytes: 6 * BS, readaheadBlocks: 2 })
    const failBelow = () => {
      source.failReads = true
      source.delayMs = 20
    }
    return { source: cache, bytes: source.bytes, readsBelow: () => source.reads, closedBelow: () => source.closed, failBelow }
  },
})

test('random reads across block boundaries return exactly the source bytes', async (t) => {
  const rng = randomFor(t)
  const randInt = (n: number) => rng.int(n)
  const source = new MemorySource(20 * BS + 1000) // a partial last block
  const cache = new BlockCache(source, { blockSize: BS, memoryBytes: 6 * BS, readaheadBlocks: 2 })
  const size = source.size
  const ranges: [number, number][] = [
    [0, 1],
    [BS - 1, 2],
    [BS - 1, BS + 2],
    [3 * BS - 10, 2 * BS + 20],
    [size - 1, 1],
    [size - 1000, 1000],
    [size - BS - 5, BS + 5],
    [19 * BS, 1000],
    [0, size],
    [7 * BS + 17, 4 * BS],
    [0, 0],
    [size, 0],
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
})

test('concurrent reads spanning two blocks each complete even when together they exceed a tiny budget', async (t) => {
  const source = new MemorySource(16 * BS)
  source.delayMs = 20
  // The smallest budget the cache allows: 4 blocks. Six readers each need most of 2 blocks at once.
  const cache = new BlockCache(source, { blockSize: BS, memoryBytes: 4 * BS, readaheadBlocks: 0 })
  const reads = [0, 1, 2, 3, 4, 5].map((i) => {
    const off = (2 * i + 1) * BS - 40 * KIB
    return cache.read(off, 80 * KIB).then((b) => t.true(b.equals(source.bytes.subarray(off, off + 80 * KIB)), `bytes at ${off}`))
  })
  await within(10_000, 'six two-block readers', Promise.all(reads))
  t.true(cache.stats().peakBytes <= 4 * BS)
})

test('concurrent readers of one missing range cause one source read, and readers spread over a block never fetch a byte twice', async (t) => {
  const source = new MemorySource(16 * BS)
  source.delayMs = 30
  const cache = new BlockCache(source, { blockSize: BS, memoryBytes: 16 * BS })
  const at = 5 * BS + 8192
  const same = await within(10_000, 'readers of one range', Promise.all(Array.from({ length: 32 }, (_, i) => cache.read(at + (i % 4) * 512, 1024))))
  for (const [i, b] of same.entries()) t.true(b.equals(source.bytes.subarray(at + (i % 4) * 512, at + (i % 4) * 512 + 1024)))
  t.is(source.reads, 1, 'one fetch for 32 readers')
  t.is(cache.stats().misses, 1)
  // Spread over block 7, 2 KiB each, all at once: each 4 KiB unit is fetched once.
  const spread = await within(
    10_000,
    'spread readers',
    Promise.all(Array.from({ length: 32 }, (_, i) => cache.read(7 * BS + i * 2048, 2048).then((b) => ({ off: 7 * BS + i * 2048, b })))),
  )
  for (const { off, b } of spread) t.true(b.equals(source.bytes.subarray(off, off + 2048)), `bytes at ${off}`)
  t.deepEqual(overlaps(source.readLog), [])
  // A later read of cached bytes is a hit with no source read.
  const before = source.reads
  const hits = cache.stats().hits
  t.true((await cache.read(at + 100, 100)).equals(source.bytes.subarray(at + 100, at + 200)))
  t.is(source.reads, before)
  t.is(cache.stats().hits, hits + 1)
})

test('random 4 KiB reads fetch only the 4 KiB they read: no readahead, amplification 1', async (t) => {
  const rng = randomFor(t)
  const randInt = (n: number) => rng.int(n)
  const source = new MemorySource(4096 * KIB)
  const cache = new BlockCache(source, { blockSize: BS, memoryBytes: 64 * BS, readaheadBlocks: 8 })
  const units = source.size / 4096
  for (let i = 0; i < 300; i++) {
    const off = randInt(units) * 4096
    const got = await cache.read(off, 4096)
    if (!got.equals(source.bytes.subarray(off, off + 4096))) t.fail(`bytes at ${off}`)
  }
  // Readahead would have been queued by the reads themselves: nothing may be in flight now.
  t.is(cache.stats().inFlight, 0)
  const s = cache.stats()
  t.is(s.prefetches, 0)
  t.true(
    source.readLog.every((r) => r.length === 4096),
    'every fetch is one 4 KiB unit',
  )
  t.true(s.bytesFetched / s.bytesRead <= 1, `amplification ${s.bytesFetched / s.bytesRead}`)
})

test('two reads inside one block are not a streak: no readahead, nothing fetched beyond them', async (t) => {
  const source = new MemorySource(64 * BS)
  const cache = new BlockCache(source, { blockSize: BS, memoryBytes: 64 * BS, readaheadBlocks: 8 })
  await cache.read(3 * BS, 4096)
  await cache.read(3 * BS + 4096, 4096)
  await cache.read(3 * BS + 40 * KIB, 4096)
  t.is(cache.stats().inFlight, 0)
  t.is(cache.stats().prefetches, 0)
  t.is(cache.stats().bytesFetched, 3 * 4096)
})

test('a real sequential streak ramps up: fetches grow up to the block size, readahead runs ahead, nothing is fetched twice', async (t) => {
  const blockSize = 1024 * KIB
  const blocks = 24
  const source = new MemorySource(blocks * blockSize)
  const cache = new BlockCache(source, { blockSize, memoryBytes: 8 * blockSize, readaheadBlocks: 4 })
  const chunk = 128 * KIB
  for (let off = 0; off < source.size; off += chunk) {
    const got = await cache.read(off, chunk)
    if (!got.equals(source.bytes.subarray(off, off + chunk))) t.fail(`bytes at ${off}`)
  }
  const s = cache.stats()
  t.deepEqual(overlaps(source.readLog), [])
  t.is(s.bytesFetched, source.size, 'every byte fetched once')
  const first = source.readLog[0]!.length
  const largest = Math.max(...source.readLog.map((r) => r.length))
  t.true(first <= 128 * KIB, `the first fetch is the read itself, ${first}`)
  t.is(largest, blockSize, 'fetches grew to whole blocks')
  t.true(s.prefetches > s.fetches, `most fetched ahead: ${s.prefetches} prefetches, ${s.fetches} demand fetches`)
})

test('a random reader beside a sequential one keeps fetching 4 KiB, and the sequential one keeps its readahead', async (t) => {
  const rng = randomFor(t)
  const randInt = (n: number) => rng.int(n)
  const source = new MemorySource(32 * BS)
  const cache = new BlockCache(source, { blockSize: BS, memoryBytes: 32 * BS, readaheadBlocks: 4 })
  const randomFetches: number[] = []
  for (let off = 0, i = 0; off < 16 * BS; off += 16 * KIB, i++) {
    t.true((await cache.read(off, 16 * KIB)).equals(source.bytes.subarray(off, off + 16 * KIB)))
    if (i % 2 === 1) {
      const r = (20 + randInt(12)) * BS + randInt(BS / 4096) * 4096
      const before = source.readLog.length
      t.true((await cache.read(r, 4096)).equals(source.bytes.subarray(r, r + 4096)))
      for (const x of source.readLog.slice(before)) if (x.offset >= 20 * BS) randomFetches.push(x.length)
    }
  }
  t.true(
    randomFetches.every((l) => l === 4096),
    `random fetches: ${randomFetches.join(', ')}`,
  )
  t.true(cache.stats().prefetches > 0)
})

test('readahead of a stream that went away is dropped before it is fetched; random readers never push a sequential one out', async (t) => {
  const source = new MemorySource(512 * BS)
  source.delayMs = 40
  const cache = new BlockCache(source, { blockSize: BS, memoryBytes: 64 * BS, readaheadBlocks: 32, concurrency: 1 })
  // A streak: its readahead queues behind a single request slot.
  for (let off = 0; off < 8 * BS; off += 64 * KIB) await cache.read(off, 64 * KIB)
  // Many random readers: they come and go, the sequential stream stays.
  await Promise.all(Array.from({ length: 20 }, (_, i) => cache.read((100 + 10 * i) * BS, 4096)))
  t.is(cache.stats().cancelled, 0, 'random reads did not cancel the readahead')
  const queuedAt = source.reads
  // Eight other sequential readers: the oldest stream goes, and its readahead with it.
  await Promise.all(
    Array.from({ length: 8 }, async (_, i) => {
      for (let off = (300 + 20 * i) * BS; off < (300 + 20 * i) * BS + 4 * 64 * KIB; off += 64 * KIB) await cache.read(off, 64 * KIB)
    }),
  )
  const s = cache.stats()
  t.true(s.cancelled > 0, `cancelled ${s.cancelled}`)
  await settled(cache)
  const late = source.readLog.slice(queuedAt).filter((r) => r.offset < 100 * BS && r.offset >= 9 * BS)
  t.true(late.length <= 1, `readahead fetched after the stream went away: ${JSON.stringify(late)}`)
})

test('memory stays within the budget across a long scan with concurrent readers', async (t) => {
  const rng = randomFor(t)
  const randInt = (n: number) => rng.int(n)
  const blocks = 300
  const budget = 8 * BS
  const source = new MemorySource(blocks * BS + 777)
  source.delayMs = 1
  const cache = new BlockCache(source, { blockSize: BS, memoryBytes: budget, readaheadBlocks: 16, concurrency: 4 })
  let maxResident = 0
  const sample = () => {
    maxResident = Math.max(maxResident, cache.stats().bytes)
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
  await within(
    60_000,
    'long scan',
    Promise.all([
      scan(1000, source.size, 48 * KIB), // unaligned: crosses block boundaries
      scan(0, source.size, 128 * KIB),
      random(300),
    ]),
  )
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
  const at = 3 * BS
  const readers = Array.from({ length: 6 }, (_, i) => cache.read(at + i * 100, 1000))
  const settled = await within(10_000, 'failing readers', Promise.allSettled(readers))
  for (const r of settled) {
    t.is(r.status, 'rejected')
    if (r.status === 'rejected') t.regex(String((r.reason as Error).message), /injected read failure/)
  }
  t.is(source.readsAt(at), 1, 'one fetch shared by all six readers')
  t.is(cache.stats().cachedBlocks, 0, 'the failure is not cached')
  t.is(cache.stats().inFlight, 0)
  source.failReads = false
  t.true((await cache.read(at + 10, 1000)).equals(source.bytes.subarray(at + 10, at + 1010)))
  t.is(source.readsAt(at), 2, 'the later read went to the source again')
  t.is(cache.stats().cachedBlocks, 1)
})

test('a failed readahead does not poison the ranges it was fetching', async (t) => {
  const source = new MemorySource(16 * BS)
  const cache = new BlockCache(source, { blockSize: BS, memoryBytes: 16 * BS, readaheadBlocks: 4 })
  for (let off = 0; off < 256 * KIB; off += 32 * KIB) await cache.read(off, 32 * KIB)
  await settled(cache)
  const before = cache.stats().prefetches
  source.failReads = true
  // Still sequential: these start more readahead, all of which fails (and so may the reads).
  for (let off = 256 * KIB; off < 8 * BS; off += 32 * KIB) await cache.read(off, 32 * KIB).catch(() => {})
  await settled(cache)
  t.true(cache.stats().prefetches > before, 'readahead was attempted while the source failed')
  source.failReads = false
  for (let off = 0; off < source.size; off += 32 * KIB) {
    const got = await cache.read(off, 32 * KIB)
    if (!got.equals(source.bytes.subarray(off, off + 32 * KIB))) t.fail(`bytes at ${off}`)
  }
  t.pass()
})

test('a mirror sees every cached range, loses each before its buffer is reused, and native reads drive readahead', async (t) => {
  const source = new MemorySource(64 * BS)
  const cache = new BlockCache(source, { blockSize: BS, memoryBytes: 8 * BS, readaheadBlocks: 2 })
  await cache.read(0, 4096)
  const published = new Map<number, Buffer>()
  const events: string[] = []
  const mirror: CacheMirror = {
    publish(start, data) {
      if (published.has(start)) t.fail(`published twice at ${start}`)
      published.set(start, data)
    },
    retract(start) {
      if (!published.delete(start)) t.fail(`retracted ${start}, which was not published`)
      events.push(`retract ${start}`)
    },
    clear() {
      published.clear()
      events.push('clear')
    },
  }
  cache.attachMirror(mirror)
  t.deepEqual([...published.keys()], [0], 'what was cached before is published at once')
  t.true(published.get(0)!.equals(source.bytes.subarray(0, 4096)))
  // Reads served natively are reported: a streak of them starts readahead here.
  for (let off = 4096; off < 6 * BS; off += 64 * KIB) {
    await cache.read(off, 64 * KIB)
    cache.noteReads([off, 64 * KIB])
  }
  await settled(cache)
  t.true(cache.stats().prefetches > 0)
  for (const [start, data] of published) if (!data.equals(source.bytes.subarray(start, start + data.length))) t.fail(`published bytes at ${start}`)
  // Scanning far past the budget evicts: every evicted range was retracted first.
  for (let off = 6 * BS; off < 40 * BS; off += 64 * KIB) await cache.read(off, 64 * KIB)
  t.true(events.some((e) => e.startsWith('retract')))
  for (const [start, data] of published) if (!data.equals(source.bytes.subarray(start, start + data.length))) t.fail(`stale bytes published at ${start}`)
  await cache.close()
  t.is(events.at(-1), 'clear')
})

test('after close() reads are refused', async (t) => {
  const source = new MemorySource(4 * BS)
  const cache = new BlockCache(source, { blockSize: BS })
  await cache.read(0, 10)
  await cache.close()
  await t.throwsAsync(cache.read(0, 10), { message: /closed/ })
})

test('block sizes that are not a multiple of 512 or below 4 KiB are refused', (t) => {
  const source = new MemorySource(64 * KIB)
  t.throws(() => new BlockCache(source, { blockSize: 1000 }), { instanceOf: RangeError })
  t.throws(() => new BlockCache(source, { blockSize: 2048 }), { instanceOf: RangeError })
  t.throws(() => new BlockCache(source, { blockSize: 4096 + 100 }), { instanceOf: RangeError })
  t.notThrows(() => new BlockCache(source, { blockSize: 4096 + 512 }))
})
