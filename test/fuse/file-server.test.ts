import test from 'ava'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { createHash, randomBytes } from 'node:crypto'
import { readFile, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { mountFileServer } from '../../src/fuse/mount-file-server.js'
import type { FuseBackend } from '../../src/fuse/backend.js'
import { loadFuse3Addon } from '../../src/native/fuse3.js'
import { BlockCache } from '../../src/cache/block-cache.js'
import { cacheOver } from '../../src/cache/cache-over.js'
import { FileSource } from '../../src/storage/file-source.js'
import { SliceSource } from '../../src/storage/slice-source.js'
import { LuksVolume } from '../../src/luks/volume.js'
import { makeEncryptedImage } from '../helpers/images.js'
import { MemorySource, WritableMemorySource } from '../helpers/memory-source.js'
import { readFromChild } from '../helpers/remotefs.js'
import { tempDir } from '../helpers/temp.js'

const exec = promisify(execFile)
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex')
const MiB = 1024 * 1024
const BACKENDS: FuseBackend[] = ['libfuse3', 'libfuse2']

test.before(() => {
  // Both backends are tested: a missing addon is a failure that says what to build.
  loadFuse3Addon()
})

/** `dd` from a child process, O_DIRECT so that every read reaches the FUSE server (no page cache). */
async function ddDirect(file: string, bs = '1M'): Promise<Buffer> {
  const { stdout } = await exec('dd', [`if=${file}`, `bs=${bs}`, 'iflag=direct', 'status=none'], { encoding: 'buffer', maxBuffer: 1 << 30 })
  return stdout
}

for (const backend of BACKENDS) {
  test(`${backend}: serves a source as a read-only file whose bytes, size and mode match`, async (t) => {
    const tmp = await tempDir()
    const source = new MemorySource(5 * MiB + 123)
    const server = await mountFileServer({ backend, mountpoint: `${tmp.dir}/fuse`, files: [{ name: 'data', source, writable: false }] })
    try {
      t.is(server.backend, backend)
      const { stdout } = await exec('stat', ['-c', '%s %a %F', server.pathOf('data')])
      t.is(stdout.trim(), `${source.size} 444 regular file`)
      const { stdout: ls } = await exec('ls', [server.mountpoint])
      t.is(ls.trim(), 'data')
      t.is(sha(await readFromChild(server.pathOf('data'))), sha(source.bytes))
      // An unaligned range from another process, as a loop device or fuse2fs would ask.
      const { stdout: part } = await exec('dd', [`if=${server.pathOf('data')}`, 'bs=1', 'skip=1000003', 'count=777', 'status=none'], { encoding: 'buffer' })
      t.deepEqual(part, source.bytes.subarray(1000003, 1000003 + 777))
      // Opening for writing is refused with EROFS.
      const err = await t.throwsAsync(exec('sh', ['-c', `echo x > ${server.pathOf('data')}`]))
      t.regex(String(err?.message), /Read-only file system/)
      t.true(server.stats().reads > 0)
    } finally {
      await server.unmount()
      await tmp.cleanup()
    }
    const mounts = await readFile('/proc/self/mounts', 'utf8')
    t.false(mounts.includes(`${tmp.dir}/fuse`), 'FUSE mount removed')
  })

  test(`${backend}: a failing source surfaces as EIO to the reader, and the server keeps serving`, async (t) => {
    const tmp = await tempDir()
    const source = new MemorySource(1024 * 1024)
    const server = await mountFileServer({ backend, mountpoint: `${tmp.dir}/fuse`, files: [{ name: 'data', source, writable: false }] })
    try {
      source.failReads = true
      const err = await t.throwsAsync(exec('dd', [`if=${server.pathOf('data')}`, 'of=/dev/null', 'bs=4096', 'count=1', 'iflag=direct', 'status=none']))
      t.regex(String(err?.message), /Input\/output error/)
      source.failReads = false
      t.is(sha(await readFromChild(server.pathOf('data'))), sha(source.bytes))
      t.true(server.stats().errors >= 1)
    } finally {
      await server.unmount()
      await tmp.cleanup()
    }
  })

  test(`${backend}: serves several files from one mount`, async (t) => {
    const tmp = await tempDir()
    const a = new MemorySource(70_000)
    const b = new MemorySource(4096)
    const server = await mountFileServer({
      backend,
      mountpoint: `${tmp.dir}/fuse`,
      files: [
        { name: 'data', source: a, writable: false },
        { name: 'header', source: b, writable: false },
      ],
    })
    try {
      const { stdout } = await exec('ls', [server.mountpoint])
      t.deepEqual(stdout.trim().split('\n').sort(), ['data', 'header'])
      t.deepEqual(await readFromChild(server.pathOf('header')), b.bytes)
      t.deepEqual(await readFromChild(server.pathOf('data')), a.bytes)
    } finally {
      await server.unmount()
      await tmp.cleanup()
    }
  })

  test(`${backend}: writes through a block cache reach the source once fsync returns, and read back at once`, async (t) => {
    const tmp = await tempDir()
    const source = new WritableMemorySource(8 * MiB)
    const cache = cacheOver(source, { blockSize: MiB, memoryBytes: 16 * MiB, writeBackIntervalMs: 60_000 })
    const server = await mountFileServer({ backend, mountpoint: `${tmp.dir}/fuse`, files: [{ name: 'data', source: cache, writable: true }] })
    try {
      const { stdout } = await exec('stat', ['-c', '%a', server.pathOf('data')])
      t.is(stdout.trim(), '600')
      const data = randomBytes(3 * MiB + 4096)
      const input = path.join(tmp.dir, 'in.bin')
      await writeFile(input, data)
      await exec('dd', [`if=${input}`, `of=${server.pathOf('data')}`, 'bs=1M', `seek=${MiB + 512}`, 'oflag=direct,seek_bytes', 'conv=notrunc,fsync', 'status=none'])
      t.true(source.bytes.subarray(MiB + 512, MiB + 512 + data.length).equals(data), 'on the source after fsync')
      t.true((await ddDirect(server.pathOf('data'))).subarray(MiB + 512, MiB + 512 + data.length).equals(data))
      t.true(server.stats().writes > 0)
      // Past the end is refused.
      const err = await t.throwsAsync(exec('dd', [`if=${input}`, `of=${server.pathOf('data')}`, 'bs=1M', `seek=8`, 'count=1', 'conv=notrunc', 'status=none']))
      t.regex(String(err?.message), /No space left|File too large|Invalid argument/)
    } finally {
      await server.unmount()
      await cache.close()
      await tmp.cleanup()
    }
  })

  for (const sectorSize of [4096, 512] as const) {
    test(`${backend}: a LUKS2 volume (${sectorSize}-byte sectors) over a block cache reads as its plaintext, first from storage, then from the cache`, async (t) => {
      const img = await makeEncryptedImage({ fsSizeMiB: 8, sectorSize, files: { 'a.bin': randomBytes(3 * MiB) } })
      const tmp = await tempDir()
      const volume = await LuksVolume.open(new BlockCache(await FileSource.open(img.image), { blockSize: MiB, memoryBytes: 64 * MiB }), img.key)
      const server = await mountFileServer({ backend, mountpoint: `${tmp.dir}/fuse`, files: [{ name: 'data', source: volume, writable: false }] })
      try {
        const plain = await readFile(img.plain)
        t.is(sha((await ddDirect(server.pathOf('data'))).subarray(0, plain.length)), sha(plain), 'cold')
        const native = server.stats().nativeReads
        t.is(sha((await ddDirect(server.pathOf('data'), '192k')).subarray(0, plain.length)), sha(plain), 'cached')
        // Unaligned ranges inside units.
        const { stdout } = await exec('dd', [`if=${server.pathOf('data')}`, 'bs=1', 'skip=1000003', 'count=5000', 'status=none'], { encoding: 'buffer' })
        t.deepEqual(stdout, plain.subarray(1000003, 1005003))
        if (backend === 'libfuse3') t.true(server.stats().nativeReads > native, 'cached ranges are decrypted by the native data plane')
      } finally {
        await server.unmount()
        await volume.close()
        await tmp.cleanup()
        await img.cleanup()
      }
    })
  }
}

test('libfuse3: reads are up to 1 MiB; cached ranges are answered without JavaScript, and those reads still drive readahead', async (t) => {
  const tmp = await tempDir()
  const source = new MemorySource(64 * MiB)
  const plain = new MemorySource(4 * MiB)
  const cache = new BlockCache(source, { blockSize: 4 * MiB, memoryBytes: 64 * MiB })
  // As in kernel unlock mode: the header file is a slice of the same cache, served from the same table.
  const header = new SliceSource(cache, 0, 3 * MiB + 512)
  const server = await mountFileServer({
    backend: 'libfuse3',
    mountpoint: `${tmp.dir}/fuse`,
    files: [
      { name: 'data', source: cache, writable: false },
      { name: 'plain', source: plain, writable: false },
      { name: 'header', source: header, writable: false },
    ],
  })
  try {
    // No cache behind 'plain': every read comes to JavaScript, and O_DIRECT 1 MiB reads arrive whole.
    t.true((await ddDirect(server.pathOf('plain'))).equals(plain.bytes))
    t.true(
      plain.readLog.some((r) => r.length === MiB),
      `read sizes: ${[...new Set(plain.readLog.map((r) => r.length))].join(', ')}`,
    )
    // The first MiB of 'data', twice: the second time not one request reaches JavaScript.
    const first = await exec('dd', [`if=${server.pathOf('data')}`, 'bs=1M', 'count=1', 'iflag=direct', 'status=none'], { encoding: 'buffer' })
    t.true(first.stdout.equals(source.bytes.subarray(0, MiB)))
    const before = { js: server.stats().reads - server.stats().nativeReads, native: server.stats().nativeReads, misses: cache.stats().misses }
    const again = await exec('dd', [`if=${server.pathOf('data')}`, 'bs=64k', 'count=16', 'iflag=direct', 'status=none'], { encoding: 'buffer' })
    t.true(again.stdout.equals(source.bytes.subarray(0, MiB)))
    t.is(server.stats().reads - server.stats().nativeReads, before.js, 'no read went to JavaScript')
    t.is(server.stats().nativeReads, before.native + 16)
    t.is(cache.stats().misses, before.misses, 'nothing missed (what was fetched since is readahead)')
    // A sequential scan: reads served natively are reported, so readahead keeps running ahead.
    t.is(sha(await ddDirect(server.pathOf('data'))), sha(source.bytes))
    const s = cache.stats()
    t.true(s.prefetches > 0, 'readahead ran')
    t.true(server.stats().nativeReads > before.native + 16 + 8, `most of the scan was native: ${JSON.stringify(server.stats())}`)
    const js = server.stats().reads - server.stats().nativeReads
    t.true((await ddDirect(server.pathOf('header'), '256k')).equals(source.bytes.subarray(0, 3 * MiB + 512)))
    t.is(server.stats().reads - server.stats().nativeReads, js, 'the slice is served from the same table by the native threads')
  } finally {
    await server.unmount()
    await cache.close()
    await tmp.cleanup()
  }
})
