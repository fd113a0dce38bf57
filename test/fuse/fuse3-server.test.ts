// The libfuse3 data plane's shutdown paths, through Fuse3FileServer and the real addon: unmount
// with the FUSE file held open by another process, unmount while requests wait in JavaScript,
// answers that arrive after the unmount, and an answer that throws. Readers are child processes.
import test from 'ava'
import { execFile, spawn } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { promisify } from 'node:util'
import { mountFileServer } from '../../src/fuse/mount-file-server.js'
import type { FileServer } from '../../src/fuse/file-server.js'
import { loadFuse3Addon } from '../../src/native/fuse3.js'
import { BlockCache } from '../../src/cache/block-cache.js'
import { checkRange, type RangeSource } from '../../src/storage/range-source.js'
import { MemorySource } from '../helpers/memory-source.js'
import { holdOpen } from '../helpers/remotefs.js'
import { tempDir } from '../helpers/temp.js'
import { within } from '../helpers/time.js'
import { waitFor } from '../../src/retry/retry.js'

const exec = promisify(execFile)
const MiB = 1024 * 1024

test.before(() => {
  // A missing addon is a failure that says what to build.
  loadFuse3Addon()
})

/** Whether anything is still mounted at `dir` (mountinfo escapes a space as \040). */
async function mountedAt(dir: string): Promise<boolean> {
  const escaped = dir.replace(/\\/g, '\\134').replace(/ /g, '\\040').replace(/\t/g, '\\011').replace(/\n/g, '\\012')
  const info = await readFile('/proc/self/mountinfo', 'utf8')
  return info.split('\n').some((line) => line.split(' ')[4] === escaped)
}

/** A source whose reads wait until the test opens the gate; `asked` resolves at the first read. */
class GatedSource implements RangeSource {
  readonly inner: MemorySource
  private open!: () => void
  private readonly gate = new Promise<void>((resolve) => {
    this.open = resolve
  })
  private firstAsk!: () => void
  readonly asked = new Promise<void>((resolve) => {
    this.firstAsk = resolve
  })
  reads = 0

  constructor(size: number) {
    this.inner = new MemorySource(size)
  }
  get size(): number {
    return this.inner.size
  }
  async read(offset: number, length: number): Promise<Buffer> {
    checkRange(this.size, offset, length)
    this.reads++
    this.firstAsk()
    await this.gate
    return this.inner.read(offset, length)
  }
  release(): void {
    this.open()
  }
  async close(): Promise<void> {}
}

test("libfuse3: unmount with the FUSE file held open by another process completes, and the holder's next read fails at once instead of hanging", async (t) => {
  const tmp = await tempDir()
  // A space in the path: the kernel escapes it in mountinfo, where the addon finds its connection.
  const mountpoint = `${tmp.dir}/fuse mount`
  const source = new MemorySource(8 * MiB)
  const server = await mountFileServer({ backend: 'libfuse3', mountpoint, files: [{ name: 'data', source, writable: false }] })
  const holder = await holdOpen(server.pathOf('data'))
  try {
    const first = await holder.read(0, 4096)
    t.true(first.ok && first.bytes.equals(source.bytes.subarray(0, 4096)), 'the holder reads while mounted')
    await within(15_000, 'unmount() with the file held open', server.unmount())
    const after = await within(5000, "the holder's read after the unmount", holder.read(6 * MiB, 4096))
    t.false(after.ok, 'the read after the unmount is an error')
    if (!after.ok) t.regex(after.code, /^(ENOTCONN|EIO|ECONNABORTED)$/)
    t.false(await mountedAt(mountpoint), 'nothing is mounted at the mount point any more')
  } finally {
    await holder.release()
    await server.unmount().catch(() => {})
    await tmp.cleanup()
  }
})

for (const cached of [false, true]) {
  const what = cached ? 'a miss of a cached file waits in JavaScript (then retry())' : 'a read waits in JavaScript (then replyData())'
  test(`libfuse3: unmount while ${what}: the reader gets an error, unmount completes, the late answer is dropped`, async (t) => {
    const tmp = await tempDir()
    const gated = new GatedSource(4 * MiB)
    const source = cached ? new BlockCache(gated, { blockSize: MiB, memoryBytes: 4 * MiB, readaheadBlocks: 0 }) : gated
    const server: FileServer = await mountFileServer({ backend: 'libfuse3', mountpoint: `${tmp.dir}/fuse`, files: [{ name: 'data', source, writable: false }] })
    const reader = spawn('dd', [`if=${server.pathOf('data')}`, 'bs=64k', 'count=1', 'iflag=direct', 'of=/dev/null', 'status=none'], { stdio: 'ignore' })
    const readerExit = new Promise<number | null>((resolve) => reader.on('exit', (code) => resolve(code)))
    try {
      await within(10_000, 'the read to reach the source', gated.asked)
      await within(15_000, 'unmount() with a request waiting in JavaScript', server.unmount())
      t.not(await within(5000, 'the reader to end after the unmount', readerExit), 0, 'the waiting read failed')
      // The source answers now, after the session is gone: the answer has nowhere to go and is dropped.
      gated.release()
      await new Promise((resolve) => setTimeout(resolve, 200))
      t.true(gated.reads >= 1)
      t.false(await mountedAt(`${tmp.dir}/fuse`))
    } finally {
      gated.release()
      reader.kill('SIGKILL')
      await server.unmount().catch(() => {})
      await source.close()
      await tmp.cleanup()
    }
  })
}

test('libfuse3: an answer that throws in JavaScript is EIO to the reader, counted and logged, not an unhandled rejection', async (t) => {
  const tmp = await tempDir()
  const source = new MemorySource(2 * MiB)
  const logged: string[] = []
  const logger = { error: (_o: unknown, msg: string) => logged.push(msg), debug: () => {}, info: () => {}, warn: () => {} }
  const server = await mountFileServer({ backend: 'libfuse3', mountpoint: `${tmp.dir}/fuse`, files: [{ name: 'data', source, writable: false }], logger: logger as any })
  try {
    // The session's replyData throws once, as a misuse caught at the addon boundary would.
    const session = (server as any).session
    const real = session.replyData.bind(session)
    let thrown = 0
    Object.defineProperty(session, 'replyData', {
      value: (id: number, data: Buffer) => {
        if (thrown++ === 0) throw new RangeError('injected: the answer is refused')
        return real(id, data)
      },
    })
    const failed = await within(
      10_000,
      'the first read',
      exec('dd', [`if=${server.pathOf('data')}`, 'bs=4k', 'count=1', 'iflag=direct', 'of=/dev/null', 'status=none']).then(
        () => 'ok',
        (err: { stderr?: string }) => String(err.stderr),
      ),
    )
    t.regex(failed, /Input\/output error/, 'the reader got EIO')
    t.is(server.stats().errors, 1)
    t.true(
      logged.some((m) => /read failed/.test(m)),
      logged.join('; '),
    )
    // The server keeps serving.
    const { stdout } = await exec('dd', [`if=${server.pathOf('data')}`, 'bs=4k', 'count=1', 'skip=7', 'iflag=direct', 'status=none'], { encoding: 'buffer' })
    t.true(stdout.equals(source.bytes.subarray(7 * 4096, 8 * 4096)))
  } finally {
    await server.unmount()
    await tmp.cleanup()
  }
})

test('libfuse3: the mount point is freed when nothing holds the file, and unmount() twice is harmless', async (t) => {
  const tmp = await tempDir()
  const server = await mountFileServer({ backend: 'libfuse3', mountpoint: `${tmp.dir}/fuse`, files: [{ name: 'data', source: new MemorySource(MiB), writable: false }] })
  await within(15_000, 'unmount()', server.unmount())
  await server.unmount()
  t.false(await mountedAt(`${tmp.dir}/fuse`))
  t.true(await waitFor(async () => !(await mountedAt(`${tmp.dir}/fuse`)), { timeoutMs: 1000, intervalMs: 50 }))
  await tmp.cleanup()
})
