import test from 'ava'
import { randomBytes, randomUUID } from 'node:crypto'
import { readFile, writeFile, open } from 'node:fs/promises'
import path from 'node:path'
import { writeHashTree } from '../../src/verity/build-tree.js'
import { parseSuperblock, encodeSuperblock, newSuperblock } from '../../src/verity/superblock.js'
import { TreeGeometry, appendedDataBlocks } from '../../src/verity/geometry.js'
import { hashBlocks, hashBlock } from '../../src/verity/hash-blocks.js'
import { MemorySource } from '../helpers/memory-source.js'
import { tempDir } from '../helpers/temp.js'
import { veritysetupFormat, veritysetupVerify } from '../helpers/verity.js'

async function buildInMemory(data: Buffer, o: { salt?: Buffer; uuid?: string } = {}) {
  const chunks: { offset: number; bytes: Buffer }[] = []
  const built = await writeHashTree(
    new MemorySource(data),
    async (offset, bytes) => {
      chunks.push({ offset, bytes: Buffer.from(bytes) })
    },
    o,
  )
  const area = Buffer.alloc(built.geometry.hashAreaBytes)
  for (const c of chunks) c.bytes.copy(area, c.offset)
  return { ...built, area }
}

// Sizes around the level boundaries: one block (no levels), one full hash block, one more, two
// levels full, and a three-level tree.
for (const blocks of [1, 2, 128, 129, 1000, 128 * 128, 128 * 128 + 1]) {
  test(`the hash area for ${blocks} data block(s) is byte for byte what veritysetup format writes`, async (t) => {
    const tmp = await tempDir()
    try {
      const data = randomBytes(blocks * 4096)
      const salt = randomBytes(32)
      const uuid = randomUUID()
      await writeFile(path.join(tmp.dir, 'data'), data)
      const root = await veritysetupFormat(path.join(tmp.dir, 'data'), path.join(tmp.dir, 'hash'), { salt, uuid })
      const theirs = await readFile(path.join(tmp.dir, 'hash'))
      const ours = await buildInMemory(data, { salt, uuid })
      t.is(ours.rootHash.toString('hex'), root.toString('hex'), 'same root hash')
      t.is(ours.area.length, theirs.length, 'same hash area size')
      t.true(ours.area.equals(theirs), 'same superblock and tree')
      t.is(ours.geometry.hashAreaBytes, theirs.length)
    } finally {
      await tmp.cleanup()
    }
  })
}

test('a tree encfs writes after the data in the same file passes veritysetup verify, and a modified byte fails it', async (t) => {
  const tmp = await tempDir()
  try {
    const file = path.join(tmp.dir, 'image')
    const data = randomBytes(300 * 4096)
    await writeFile(file, data)
    const fh = await open(file, 'r+')
    const built = await writeHashTree(new MemorySource(data), async (offset, bytes) => {
      await fh.write(bytes, 0, bytes.length, data.length + offset)
    })
    await fh.close()
    t.is((await veritysetupVerify(file, file, built.rootHash, { hashOffset: data.length, dataBlocks: 300 })).code, 0)
    t.is(appendedDataBlocks(data.length + built.geometry.hashAreaBytes), 300, 'the data size is found back from the file size')
    const bytes = await readFile(file)
    bytes[4096 * 7 + 3]! ^= 1
    await writeFile(file, bytes)
    t.not((await veritysetupVerify(file, file, built.rootHash, { hashOffset: data.length, dataBlocks: 300 })).code, 0)
  } finally {
    await tmp.cleanup()
  }
})

test("superblock: parse(encode(x)) is x, and veritysetup's own is read", async (t) => {
  const sb = newSuperblock(12345)
  const back = parseSuperblock(encodeSuperblock(sb), 'test')
  t.deepEqual(back, sb)
  const tmp = await tempDir()
  try {
    await writeFile(path.join(tmp.dir, 'd'), randomBytes(10 * 4096))
    const salt = Buffer.from('00112233', 'hex')
    await veritysetupFormat(path.join(tmp.dir, 'd'), path.join(tmp.dir, 'h'), { salt, uuid: '12345678-1234-1234-1234-123456789abc' })
    const parsed = parseSuperblock(await readFile(path.join(tmp.dir, 'h')), 'h')
    t.like(parsed, { version: 1, hashType: 1, algorithm: 'sha256', dataBlockSize: 4096, hashBlockSize: 4096, dataBlocks: 10, uuid: '12345678-1234-1234-1234-123456789abc' })
    t.deepEqual(parsed.salt, salt)
  } finally {
    await tmp.cleanup()
  }
})

function codeOf(f: () => unknown): string | undefined {
  try {
    f()
  } catch (err) {
    return (err as { code?: string }).code
  }
  return undefined
}

test('superblocks encfs does not verify are refused with what to do', (t) => {
  const good = encodeSuperblock(newSuperblock(10))
  const edit = (f: (b: Buffer) => void) => {
    const b = Buffer.from(good)
    f(b)
    return b
  }
  t.is(
    codeOf(() => parseSuperblock(Buffer.alloc(512), 'x')),
    'VERITY_NO_SUPERBLOCK',
  )
  t.regex(
    t.throws(() =>
      parseSuperblock(
        edit((b) => b.write('sha1\0\0', 32, 'latin1')),
        'x',
      ),
    )!.message,
    /hash algorithm "sha1".*--hash sha256/,
  )
  t.regex(
    t.throws(() =>
      parseSuperblock(
        edit((b) => b.writeUInt32LE(0, 12)),
        'x',
      ),
    )!.message,
    /hash type 0/,
  )
  t.regex(
    t.throws(() =>
      parseSuperblock(
        edit((b) => b.writeUInt32LE(512, 64)),
        'x',
      ),
    )!.message,
    /512-byte data blocks/,
  )
  t.is(
    codeOf(() =>
      parseSuperblock(
        edit((b) => b.writeBigUInt64LE(0n, 72)),
        'x',
      ),
    ),
    'VERITY_BAD_SUPERBLOCK',
  )
  t.is(
    codeOf(() =>
      parseSuperblock(
        edit((b) => b.writeUInt16LE(300, 80)),
        'x',
      ),
    ),
    'VERITY_BAD_SUPERBLOCK',
  )
})

test('geometry: levels and sizes as the kernel counts them', (t) => {
  t.deepEqual(new TreeGeometry(1).levelBlocks, [])
  t.deepEqual(new TreeGeometry(128).levelBlocks, [1])
  t.deepEqual(new TreeGeometry(129).levelBlocks, [2, 1])
  t.deepEqual(new TreeGeometry(1000).levelStart, [1, 0], 'the top level is stored first')
  t.is(new TreeGeometry(1000).hashAreaBytes, 10 * 4096)
  t.is(appendedDataBlocks(4096 * 1000 + 1), undefined)
})

test('bulk hashing equals one hash per block', (t) => {
  const salt = randomBytes(32)
  const data = randomBytes(64 * 4096)
  const bulk = hashBlocks(salt, data)
  for (let i = 0; i < 64; i++) t.deepEqual(bulk.subarray(i * 32, (i + 1) * 32), hashBlock(salt, data.subarray(i * 4096, (i + 1) * 4096)))
})
