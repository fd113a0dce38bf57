import test from 'ava'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { createHash } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { mountFileServer } from '../../src/fuse/file-server.js'
import { MemorySource } from '../helpers/memory-source.js'
import { tempDir, readFromChild } from '../helpers/remotefs.js'

const exec = promisify(execFile)
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex')

test('serves a source as a read-only file whose bytes, size and mode match', async (t) => {
  const tmp = await tempDir()
  const source = new MemorySource(5 * 1024 * 1024 + 123)
  const server = await mountFileServer({ backend: 'libfuse2', mountpoint: `${tmp.dir}/fuse`, files: [{ name: 'data', source, writable: false }] })
  try {
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

test('a failing source surfaces as EIO to the reader, and the server keeps serving', async (t) => {
  const tmp = await tempDir()
  const source = new MemorySource(1024 * 1024)
  const server = await mountFileServer({ backend: 'libfuse2', mountpoint: `${tmp.dir}/fuse`, files: [{ name: 'data', source, writable: false }] })
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

test('serves several files from one mount', async (t) => {
  const tmp = await tempDir()
  const a = new MemorySource(70_000)
  const b = new MemorySource(4096)
  const server = await mountFileServer({ backend: 'libfuse2', mountpoint: `${tmp.dir}/fuse`, files: [{ name: 'data', source: a, writable: false }, { name: 'header', source: b, writable: false }] })
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
