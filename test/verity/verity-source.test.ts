import test from 'ava'
import { randomBytes } from 'node:crypto'
import { readFile, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { VeritySource } from '../../src/verity/verity-source.js'
import { IntactReads } from '../../src/verity/intact-reads.js'
import { VerityMismatchError } from '../../src/verity/errors.js'
import { BlockCache } from '../../src/cache/block-cache.js'
import { cacheOver } from '../../src/cache/cache-over.js'
import { pino } from 'pino'
import { MemorySource } from '../helpers/memory-source.js'
import { tempDir } from '../helpers/temp.js'
import { conformance } from '../storage/conformance.js'
import { veritysetupFormat } from '../helpers/verity.js'

const BLOCKS = 3000 // two levels, 24 level-0 hash blocks

interface Fixture {
  data: Buffer
  area: Buffer
  root: Buffer
}

/** Data and the hash area real veritysetup made for it (separate files). */
async function fixture(blocks = BLOCKS): Promise<Fixture> {
  const tmp = await tempDir()
  try {
    const data = randomBytes(blocks * 4096)
    await writeFile(path.join(tmp.dir, 'd'), data)
    const root = await veritysetupFormat(path.join(tmp.dir, 'd'), path.join(tmp.dir, 'h'))
    return { data, area: await readFile(path.join(tmp.dir, 'h')), root }
  } finally {
    await tmp.cleanup()
  }
}

let f: Fixture
// For the conformance subjects: more level-0 hash blocks (66) than the smallest hash cache holds
// (64), so that reads still fetch hash blocks after open (which fetches the level's first 128).
let wide: Fixture
const WIDE_BLOCKS = 8448
test.before(async () => {
  ;[f, wide] = await Promise.all([fixture(), fixture(WIDE_BLOCKS)])
})

function memoryLogger() {
  const lines: Record<string, unknown>[] = []
  return {
    lines,
    logger: pino(
      { level: 'debug' },
      {
        write: (s: string) => {
          lines.push(JSON.parse(s) as Record<string, unknown>)
        },
      },
    ),
  }
}

function open(data: Buffer, area: Buffer, root: Buffer, extra: Partial<Parameters<typeof VeritySource.open>[2]> = {}) {
  const dataSource = new MemorySource(Buffer.from(data))
  const hashSource = new MemorySource(Buffer.from(area))
  return { dataSource, hashSource, opened: VeritySource.open(dataSource, hashSource, { rootHash: root, hashOffset: 0, ...extra }) }
}

/** The hash tree fails at once while the data is still on its way (50 ms): the data transfer must not outlive the failed read. */
const hashFailsFirst = (data: MemorySource, hash: MemorySource) => () => {
  hash.failReads = true
  data.delayMs = 50
}
const SMALLEST_HASH_CACHE = 64 * 4096

conformance({
  name: 'VeritySource (a tree made by veritysetup format)',
  open: async () => {
    const { opened, dataSource, hashSource } = open(wide.data, wide.area, wide.root, { hashCacheBytes: SMALLEST_HASH_CACHE })
    return {
      source: await opened,
      bytes: wide.data,
      readsBelow: () => dataSource.reads + hashSource.reads,
      closedBelow: () => dataSource.closed && hashSource.closed,
      failBelow: hashFailsFirst(dataSource, hashSource),
    }
  },
})

conformance({
  name: 'IntactReads over a BlockCache over a VeritySource',
  open: async () => {
    const { opened, dataSource, hashSource } = open(wide.data, wide.area, wide.root, { hashCacheBytes: SMALLEST_HASH_CACHE })
    const verity = await opened
    const cache = cacheOver(verity, { blockSize: 1024 * 1024, memoryBytes: 4 * 1024 * 1024, readaheadBlocks: 1 })
    return {
      source: new IntactReads(cache, verity),
      bytes: wide.data,
      readsBelow: () => dataSource.reads + hashSource.reads,
      closedBelow: () => dataSource.closed && hashSource.closed,
      failBelow: hashFailsFirst(dataSource, hashSource),
    }
  },
})

test('a tree made by veritysetup format verifies: blocks are counted, hash blocks fetched once and cached, one data fetch per range', async (t) => {
  const { opened, hashSource, dataSource } = open(f.data, f.area, f.root)
  const v = await opened
  t.is(v.size, BLOCKS * 4096)
  t.true((await v.read(0, v.size)).equals(f.data))
  const stats = v.stats()
  t.true(stats.verifiedBlocks >= BLOCKS)
  t.is(stats.failedReads, 0)
  t.is(stats.hashBlocksFetched, 25, 'every hash block fetched once, then cached')
  const before = hashSource.reads
  await v.read(0, v.size)
  t.is(hashSource.reads, before, 'verified hash blocks come from the cache')
  t.is(dataSource.readLog.at(-1)?.length, v.size, 'one data fetch per range')
  await v.close()
  t.true(dataSource.closed && hashSource.closed)
})

test('the tree after the data in the same source (hash_offset): the verified size is the data area only', async (t) => {
  const tmp = await tempDir()
  try {
    const file = path.join(tmp.dir, 'img')
    const data = randomBytes(500 * 4096)
    await writeFile(file, data)
    const hashOffset = 500 * 4096
    const root = await veritysetupFormat(file, file, { hashOffset, dataBlocks: 500 })
    const whole = new MemorySource(await readFile(file))
    const v = await VeritySource.open(whole, whole, { rootHash: root, hashOffset })
    t.is(v.size, 500 * 4096, 'what is above sees the data area, never the tree')
    t.true((await v.read(0, v.size)).equals(data))
    await v.close()
    const bad = await t.throwsAsync(VeritySource.open(whole, whole, { rootHash: root, hashOffset: 4096 }))
    t.is((bad as { code?: string }).code, 'VERITY_NO_SUPERBLOCK')
    // A tree covering less than everything before it: the bytes in the gap would be served unverified by nobody, and trusted by the size.
    await writeFile(file, data)
    const gapRoot = await veritysetupFormat(file, file, { hashOffset: 520 * 4096, dataBlocks: 500 })
    const gapped = new MemorySource(await readFile(file))
    const gap = await t.throwsAsync(VeritySource.open(gapped, gapped, { rootHash: gapRoot, hashOffset: 520 * 4096 }))
    t.is((gap as { code?: string }).code, 'VERITY_DATA_SIZE')
    t.regex(gap!.message, /covers 500 data blocks \(2048000 bytes\), but the hash area starts at byte 2129920/)
  } finally {
    await tmp.cleanup()
  }
})

test('a flipped data byte fails the reads that touch its block, loudly once, counted; other blocks keep reading', async (t) => {
  const data = Buffer.from(f.data)
  data[1234 * 4096 + 77]! ^= 0x01
  const { lines, logger } = memoryLogger()
  const { opened } = open(data, f.area, f.root, { logger })
  const v = await opened
  const err = await t.throwsAsync(v.read(1230 * 4096, 10 * 4096))
  t.true(err instanceof VerityMismatchError)
  t.regex(err!.message, /data block 1234 \(image bytes 5054464-5058559\)/)
  t.deepEqual((err as VerityMismatchError).bad, [{ start: 1234 * 4096, end: 1235 * 4096 }])
  await t.throwsAsync(v.read(1234 * 4096 + 100, 1), { instanceOf: VerityMismatchError }, 'a second read of the block fails too')
  t.true((await v.read(1233 * 4096, 4096)).equals(f.data.subarray(1233 * 4096, 1234 * 4096)), 'the block before reads fine')
  t.true((await v.read(1235 * 4096, 8192)).equals(f.data.subarray(1235 * 4096, 1237 * 4096)), 'the blocks after read fine')
  const loud = lines.filter((l) => String(l.msg).startsWith('INTEGRITY VIOLATION'))
  t.is(loud.length, 1, 'loud once')
  t.is(loud[0]!.block, 1234)
  const s = v.stats()
  t.is(s.badDataBlocks, 1)
  t.is(s.failedReads, 2)
  t.regex(s.firstFailure!, /data block 1234/)
})

test('a block copied from another offset fails (each block is bound to its position by the tree)', async (t) => {
  const data = Buffer.from(f.data)
  data.copy(data, 100 * 4096, 2000 * 4096, 2001 * 4096)
  const v = await open(data, f.area, f.root).opened
  const err = await t.throwsAsync(v.read(0, v.size), { instanceOf: VerityMismatchError })
  t.regex(err!.message, /data block 100 /)
})

test('a flipped byte in a level-0 hash block fails the 128 data blocks under it, only them', async (t) => {
  const area = Buffer.from(f.area)
  // Hash area: superblock, top block, then level 0; level-0 block 5 covers data blocks 640-767.
  area[4096 * (2 + 5) + 9]! ^= 0x80
  const { lines, logger } = memoryLogger()
  const v = await open(f.data, area, f.root, { logger }).opened
  const err = await t.throwsAsync(v.read(700 * 4096, 4096), { instanceOf: VerityMismatchError })
  t.regex(err!.message, /hash block 5 of tree level 0 .* data blocks 640-767 cannot be verified/)
  t.true((await v.read(639 * 4096, 4096)).equals(f.data.subarray(639 * 4096, 640 * 4096)))
  t.true((await v.read(768 * 4096, 4096)).equals(f.data.subarray(768 * 4096, 769 * 4096)))
  t.is(v.stats().badHashBlocks, 1)
  t.true(lines.some((l) => String(l.msg).startsWith('INTEGRITY VIOLATION: hash block 5 of tree level 0')))
})

test('a wrong root hash, a modified top block or salt: refused at open', async (t) => {
  const wrong = Buffer.from(f.root)
  wrong[0]! ^= 1
  t.is(((await t.throwsAsync(open(f.data, f.area, wrong).opened)) as { code?: string }).code, 'VERITY_ROOT_MISMATCH')
  const top = Buffer.from(f.area)
  top[4096 + 100]! ^= 1
  t.is(((await t.throwsAsync(open(f.data, top, f.root).opened)) as { code?: string }).code, 'VERITY_ROOT_MISMATCH')
  const salt = Buffer.from(f.area)
  salt[88]! ^= 1
  t.is(((await t.throwsAsync(open(f.data, salt, f.root).opened)) as { code?: string }).code, 'VERITY_ROOT_MISMATCH')
})

test('a superblock edited to cover fewer or more data blocks than the tree was built for is refused at open', async (t) => {
  for (const blocks of [BLOCKS - 1, BLOCKS + 1, 2 * 128]) {
    const area = Buffer.from(f.area)
    area.writeBigUInt64LE(BigInt(blocks), 72)
    const err = await t.throwsAsync(open(f.data, area, f.root).opened)
    t.is((err as { code?: string }).code, blocks === BLOCKS + 1 ? 'VERITY_TRUNCATED' : 'VERITY_SUPERBLOCK_MISMATCH', `${blocks} blocks`)
  }
  // More blocks than the image holds, with the data long enough: the tree has no hash for them.
  const area = Buffer.from(f.area)
  area.writeBigUInt64LE(BigInt(BLOCKS + 1), 72)
  const err = await t.throwsAsync(VeritySource.open(new MemorySource(Buffer.concat([f.data, Buffer.alloc(4096)])), new MemorySource(area), { rootHash: f.root, hashOffset: 0 }))
  t.is((err as { code?: string }).code, 'VERITY_SUPERBLOCK_MISMATCH')
})

test('a truncated tree or image is refused at open', async (t) => {
  t.is(((await t.throwsAsync(open(f.data, f.area.subarray(0, f.area.length - 4096), f.root).opened)) as { code?: string }).code, 'VERITY_TRUNCATED')
  t.is(((await t.throwsAsync(open(f.data.subarray(0, 4096 * 100), f.area, f.root).opened)) as { code?: string }).code, 'VERITY_TRUNCATED')
})

test("one data block: no tree levels, the root is the block's own hash", async (t) => {
  const one = await fixture(1)
  const v = await open(one.data, one.area, one.root).opened
  t.true((await v.read(0, 4096)).equals(one.data))
  const bad = Buffer.from(one.data)
  bad[0]! ^= 1
  const w = await open(bad, one.area, one.root).opened
  await t.throwsAsync(w.read(10, 10), { instanceOf: VerityMismatchError })
})

test('under a block cache: a bad block never enters the cache, and its neighbours in the same cache block still read', async (t) => {
  const data = Buffer.from(f.data)
  data[300 * 4096]! ^= 0xff
  const { dataSource, opened } = open(data, f.area, f.root)
  const v = await opened
  const cache = new BlockCache(v, { blockSize: 1024 * 1024, memoryBytes: 8 * 1024 * 1024, readaheadBlocks: 0 })
  const image = new IntactReads(cache, v)
  // Cache block 1 (bytes 1 MiB - 2 MiB, data blocks 256-511) holds the bad block.
  await t.throwsAsync(image.read(300 * 4096 + 5, 10), { instanceOf: VerityMismatchError })
  t.true((await image.read(256 * 4096, 44 * 4096)).equals(f.data.subarray(256 * 4096, 300 * 4096)), 'the blocks before it in the cache block')
  t.true((await image.read(301 * 4096, 4096)).equals(f.data.subarray(301 * 4096, 302 * 4096)), 'a block after it')
  t.true((await image.read(0, 1024 * 1024)).equals(f.data.subarray(0, 1024 * 1024)), 'another cache block')
  // readInto (what the volume above uses) reads around the cache the same way.
  const into = Buffer.alloc(3 * 4096)
  await image.readInto(302 * 4096, into)
  t.true(into.equals(f.data.subarray(302 * 4096, 305 * 4096)), 'readInto: blocks after it')
  await t.throwsAsync(image.readInto(299 * 4096, into), { instanceOf: VerityMismatchError }, 'readInto over the bad block')
  const fetches = dataSource.reads
  await t.throwsAsync(image.read(300 * 4096, 4096))
  t.is(dataSource.reads, fetches, 'a known-bad block is refused without fetching it again')
  // Straight from the cache, under IntactReads: had the bad block been cached, this would return its bytes.
  await t.throwsAsync(cache.read(300 * 4096, 4096), { instanceOf: VerityMismatchError }, 'the bad block is not in the cache')
  t.is(dataSource.reads, fetches)
  await image.close()
  t.true(dataSource.closed)
})

/** The real tree's blocks: the superblock, then its top block, then level 0 (24 blocks for 3000 data blocks). */
function treeParts(area: Buffer) {
  return { top: area.subarray(4096, 8192), level0: area.subarray(8192, 8192 + 24 * 4096) }
}

/** A superblock copied from the real one, claiming `blocks` data blocks (same salt, so the root stays the real one). */
function forgedSuperblock(area: Buffer, blocks: number): Buffer {
  const sb = Buffer.from(area.subarray(0, 4096))
  sb.writeBigUInt64LE(BigInt(blocks), 72)
  return sb
}

test('forged superblocks that present part of the tree as the data are refused: the data size is pinned by hash_offset, the image size or verity.data_blocks', async (t) => {
  const { top, level0 } = treeParts(f.area)
  const hashOffset = BLOCKS * 4096
  // The image blob rewritten, the pinned hash_offset kept: level 0 as "the data", then filler up to the superblock.
  const asLevel0 = Buffer.concat([level0, Buffer.alloc(hashOffset - level0.length), forgedSuperblock(f.area, 24), top])
  const l0 = new MemorySource(asLevel0)
  const err = await t.throwsAsync(VeritySource.open(l0, l0, { rootHash: f.root, hashOffset }))
  t.is((err as { code?: string }).code, 'VERITY_DATA_SIZE', err!.message)
  t.regex(err!.message, /superblock covers 24 data blocks \(98304 bytes\), but the hash area starts at byte 12288000/)
  // The top hash block alone as a one-block image (no tree levels: the root is its own hash).
  const asTop = Buffer.concat([top, Buffer.alloc(hashOffset - 4096), forgedSuperblock(f.area, 1)])
  const one = new MemorySource(asTop)
  t.is(((await t.throwsAsync(VeritySource.open(one, one, { rootHash: f.root, hashOffset }))) as { code?: string }).code, 'VERITY_DATA_SIZE')
  // A separate tree blob replaced alone: the image blob still holds 3000 blocks.
  const sep = await t.throwsAsync(open(f.data, Buffer.concat([forgedSuperblock(f.area, 24), top]), f.root).opened)
  t.is((sep as { code?: string }).code, 'VERITY_DATA_SIZE')
  t.regex(sep!.message, /covers 24 data blocks \(98304 bytes\), but the image is 12288000 bytes/)
  // Both blobs replaced: only the pinned count tells.
  const both = open(level0, Buffer.concat([forgedSuperblock(f.area, 24), top]), f.root, { dataBlocks: BLOCKS })
  const pinned = await t.throwsAsync(both.opened)
  t.is((pinned as { code?: string }).code, 'VERITY_DATA_SIZE')
  t.regex(pinned!.message, /covers 24 data blocks, but verity\.data_blocks pins 3000/)
  // The real tree with the right count pinned opens.
  const ok = await open(f.data, f.area, f.root, { dataBlocks: BLOCKS }).opened
  t.is(ok.size, BLOCKS * 4096)
  await ok.close()
})

test('an image modified all over: the log says it loudly once, then at most 10 lines a minute and how many it did not tell; /status still counts every block, and the bookkeeping is bounded', async (t) => {
  const data = Buffer.from(f.data)
  for (let b = 0; b < 2000; b++) data[b * 4096 + 1]! ^= 0x40
  const { lines, logger } = memoryLogger()
  const v = await open(data, f.area, f.root, { logger }).opened
  for (let off = 0; off < v.size; off += 64 * 4096) await v.read(off, Math.min(64 * 4096, v.size - off)).catch(() => {})
  await v.close()
  const errors = lines.filter((l) => l.level === 50)
  t.is(errors.filter((l) => String(l.msg).startsWith('INTEGRITY VIOLATION')).length, 1, 'loud once')
  t.true(errors.length <= 12, `${errors.length} error lines for 2000 bad blocks`)
  t.true(
    errors.some((l) => /^1989 more dm-verity failure\(s\) were not logged one by one/.test(String(l.msg))),
    'the rest are counted in one line',
  )
  t.is(v.stats().badDataBlocks, 2000, 'every bad block counted')

  // Past the set's bound, failures are still counted.
  const small = await open(data, f.area, f.root, { logger: pino({ level: 'silent' }), badBlocks: { maxTracked: 100 } }).opened
  for (let off = 0; off < small.size; off += 64 * 4096) await small.read(off, Math.min(64 * 4096, small.size - off)).catch(() => {})
  t.is(small.stats().badDataBlocks, 2000)
  await small.close()
})
