// The libfuse3 addon itself (native/fuse3), without Fuse3FileServer around it: the cache table
// read by the FUSE threads while JavaScript retracts ranges and reuses their buffers, plain and
// AES-XTS; and the checks at its boundary (options, table ranges, answers). Readers are child
// processes reading the real FUSE mount.
import test from 'ava'
import { execFile, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { promisify } from 'node:util'
import { setImmediate as tick } from 'node:timers/promises'
import { loadFuse3Addon, type Fuse3Session, type Fuse3Stop, type Fuse3Table } from '../../src/native/fuse3.js'
import { loadAddon } from '../../src/native/addon.js'
import { tempDir, type TempDir } from '../helpers/temp.js'
import { within } from '../helpers/time.js'

const exec = promisify(execFile)
const KiB = 1024
const BLOCK = 256 * KiB
const BLOCKS = 16
const SECTOR = 512
const UNIT = 4096
// Whole-file reads per reader: long enough for JavaScript to rewrite every range several times under them.
const ROUNDS = 8

const addon = loadFuse3Addon()
const K = addon.events

/** Block `block` at `version`: every 512-byte sector starts with (block, version, sector) and is filled with a byte of both. */
function pattern(block: number, version: number, into: Buffer = Buffer.alloc(BLOCK)): Buffer {
  for (let s = 0; s < BLOCK / SECTOR; s++) {
    const at = s * SECTOR
    into.fill((block * 31 + version * 7) & 0xff, at, at + SECTOR)
    into.writeUInt32LE(block, at)
    into.writeUInt32LE(version, at + 4)
    into.writeUInt32LE(s, at + 8)
  }
  return into
}

/**
 * What is wrong with `bytes`, read from offset 0 in `readSize` requests, when `rangeOf(pos)`
 * names the cached range a byte was served from: each sector whole and in its place, and within
 * one request all sectors of one range of the same version (a range is never rewritten under a reader).
 */
function problems(bytes: Buffer, readSize: number, rangeOf: (pos: number) => number): string[] {
  const out: string[] = []
  for (let r = 0; r < bytes.length; r += readSize) {
    const versions = new Map<number, Set<number>>()
    for (let pos = r; pos < Math.min(bytes.length, r + readSize); pos += SECTOR) {
      const block = Math.floor(pos / BLOCK)
      const sector = (pos % BLOCK) / SECTOR
      const v = bytes.readUInt32LE(pos + 4)
      const fill = (block * 31 + v * 7) & 0xff
      const torn = bytes.readUInt32LE(pos) !== block || bytes.readUInt32LE(pos + 8) !== sector || bytes.subarray(pos + 12, pos + SECTOR).some((b) => b !== fill)
      if (torn) out.push(`sector at ${pos} is torn or misplaced`)
      const range = rangeOf(pos)
      versions.set(range, (versions.get(range) ?? new Set()).add(v))
    }
    for (const [range, vs] of versions) if (vs.size > 1) out.push(`the read at ${r} mixes versions ${[...vs].join(', ')} of range ${range}`)
  }
  return out
}

interface Mounted {
  session: Fuse3Session
  dir: TempDir
  path: string
  stopped: Promise<Fuse3Stop>
  unmount(): Promise<Fuse3Stop>
}

/** A raw session serving `files`; `answer` handles the request events the test expects. */
async function mountRaw(
  files: ConstructorParameters<typeof addon.Session>[0]['files'],
  answer: (session: Fuse3Session, kind: number, id: number, file: number, offset: number, length: number) => void,
): Promise<Mounted> {
  const dir = await tempDir('encfs-fuse3-addon-')
  let stopped!: (s: Fuse3Stop) => void
  const stop = new Promise<Fuse3Stop>((resolve) => {
    stopped = resolve
  })
  let session!: Fuse3Session
  session = new addon.Session({ mountpoint: dir.dir, fsname: 'encfs-test', subtype: 'encfs-test', files }, (kind, id, file, offset, length, data) => {
    if (kind === K.stopped) return stopped(data as Fuse3Stop)
    if (kind === K.touch) return void session.drainTouches()
    answer(session, kind, id, file, offset, length)
  })
  session.mount()
  let done: Promise<Fuse3Stop> | undefined
  return {
    session,
    dir,
    path: dir.dir,
    stopped: stop,
    unmount() {
      done ??= (async () => {
        session.unmount()
        const s = await within(20_000, 'the stopped event', stop)
        session.close()
        await dir.cleanup()
        return s
      })()
      return done
    },
  }
}

/** `rounds` whole-file reads of `file` in 64 KiB O_DIRECT requests, from a child process: the bytes, concatenated. */
function readLoop(file: string, rounds: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = spawn('sh', ['-c', `for i in $(seq ${rounds}); do dd if="$1" bs=64k iflag=direct status=none || exit 1; done`, 'sh', file], { stdio: ['ignore', 'pipe', 'pipe'] })
    const chunks: Buffer[] = []
    let err = ''
    child.stdout.on('data', (d: Buffer) => chunks.push(d))
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString()
    })
    // 'close', not 'exit': the child may have exited before all of its output was read.
    child.on('close', (code) => (code === 0 ? resolve(Buffer.concat(chunks)) : reject(new Error(`reader exited with ${code}: ${err}`))))
  })
}

test("the event kinds are the addon's own, seven distinct numbers", (t) => {
  t.deepEqual(Object.keys(K).sort(), ['fsync', 'read', 'readData', 'stopped', 'touch', 'write', 'writeEncrypted'])
  t.is(new Set(Object.values(K)).size, 7)
  t.true(Object.isFrozen(K))
})

for (const xts of [false, true]) {
  test(`the cache table under concurrent native readers while JavaScript retracts ranges and rewrites and moves their buffers${xts ? ' (AES-XTS, units split between ranges)' : ''}`, async (t) => {
    const key = randomBytes(64)
    const crypt = loadAddon()
    const table: Fuse3Table = new addon.Table()
    const size = BLOCKS * BLOCK
    // Ranges of uneven sizes under AES-XTS, so that some 4 KiB units are split between two of them.
    const cuts = Array.from({ length: BLOCKS }, (_, b) => b * BLOCK + (xts && b % 2 === 1 ? 1536 : 0))
    const rangeOf = (pos: number): number => cuts.findLastIndex((c) => c <= pos)
    const versions = new Array<number>(BLOCKS).fill(0) // per range
    /** The plaintext of [from, to), each sector at the version of the range it is in. */
    const plain = (from: number, to: number): Buffer => {
      const out = Buffer.alloc(to - from)
      for (let pos = from; pos < to; pos += SECTOR) {
        const block = Math.floor(pos / BLOCK)
        pattern(block, versions[rangeOf(pos)]!).copy(out, pos - from, pos % BLOCK, (pos % BLOCK) + SECTOR)
      }
      return out
    }
    /** Range `i` as the table holds it (its ciphertext under AES-XTS), written into its buffer. */
    const fill = (i: number, buf: Buffer): void => {
      const start = cuts[i]!
      const end = cuts[i + 1] ?? size
      if (!xts) return void plain(start, end).copy(buf)
      const a = Math.floor(start / UNIT) * UNIT
      const b = Math.ceil(end / UNIT) * UNIT
      const units = plain(a, b)
      crypt.xtsCrypt(true, key, units, units, a / SECTOR, UNIT, true)
      units.copy(buf, 0, start - a, end - a)
    }
    const buffers = cuts.map((c, i) => Buffer.alloc((cuts[i + 1] ?? size) - c))
    buffers.forEach((buf, i) => {
      fill(i, buf)
      table.publish(cuts[i]!, buf)
    })
    let misses = 0
    const m = await mountRaw(
      [{ name: 'data', size, writable: false, table, offset: 0, ...(xts ? { xts: { key, unit: UNIT, plain64: true } } : {}) }],
      (session, kind, id, _file, offset, length) => {
        // A miss (a range retracted for the moment): answered with the plaintext of the current versions.
        misses++
        t.true(kind === K.read || kind === K.readData, `kind ${kind}`)
        session.replyData(id, plain(offset, offset + length))
      },
    )
    try {
      const file = `${m.path}/data`
      const readers = [readLoop(file, ROUNDS), readLoop(file, ROUNDS), readLoop(file, ROUNDS)]
      let finished = false
      void Promise.allSettled(readers).then(() => {
        finished = true
      })
      let rewrites = 0
      while (!finished) {
        // Retract a range (it waits for its readers), rewrite its buffer in place at a new version,
        // publish it again; every few rounds two ranges of the same size trade buffers.
        const i = rewrites % BLOCKS
        table.retract(cuts[i]!)
        versions[i]!++
        fill(i, buffers[i]!)
        table.publish(cuts[i]!, buffers[i]!)
        if (rewrites % 5 === 0) {
          const [a, b] = [2, 4]
          table.retract(cuts[a]!)
          table.retract(cuts[b]!)
          ;[buffers[a], buffers[b]] = [buffers[b]!, buffers[a]!]
          versions[a]!++
          versions[b]!++
          fill(a, buffers[a]!)
          fill(b, buffers[b]!)
          table.publish(cuts[a]!, buffers[a]!)
          table.publish(cuts[b]!, buffers[b]!)
        }
        rewrites++
        await tick()
      }
      const results = await within(120_000, 'the readers', Promise.all(readers))
      let bad: string[] = []
      for (const bytes of results) {
        t.is(bytes.length, ROUNDS * size)
        for (let round = 0; round < ROUNDS; round++) bad = bad.concat(problems(bytes.subarray(round * size, (round + 1) * size), 64 * KiB, rangeOf))
      }
      t.deepEqual(bad.slice(0, 10), [], `${bad.length} problems`)
      t.true(rewrites > 20, `JavaScript rewrote ranges ${rewrites} times while they were read`)
      t.true(m.session.stats().nativeReads > 0, 'reads were answered natively')
      t.log(`${rewrites} rewrites, ${m.session.stats().nativeReads} native reads, ${misses} misses`)
    } finally {
      await m.unmount()
    }
    table.clear()
    t.is(table.size(), 0)
  })
}

test('options are checked before anything is mounted: each bad value is a TypeError or RangeError naming it', (t) => {
  const ok = { name: 'data', size: 4096, writable: false }
  const make = (o: Record<string, unknown>) => () => new addon.Session({ mountpoint: '/tmp', fsname: 'encfs', subtype: 'encfs', files: [ok], ...o } as any, () => {})
  t.throws(make({ mountpoint: 'relative/dir' }), { instanceOf: TypeError, message: /mountpoint/ })
  t.throws(make({ fsname: 'encfs,allow_other' }), { instanceOf: TypeError, message: /fsname/ }, 'a comma would add mount options')
  t.throws(make({ subtype: '' }), { instanceOf: TypeError, message: /subtype/ })
  t.throws(make({ files: [] }), { instanceOf: RangeError, message: /files/ })
  t.throws(make({ files: [{ ...ok, name: '../x' }] }), { instanceOf: TypeError, message: /name/ })
  t.throws(make({ files: [ok, ok] }), { instanceOf: TypeError, message: /twice/ })
  for (const size of [-1, 1.5, Number.NaN, 2 ** 60, '4096']) {
    t.throws(make({ files: [{ ...ok, size }] }), { message: /size/ }, `size ${String(size)}`)
  }
  t.throws(make({ files: [{ ...ok, table: {}, offset: 0 }] }), { instanceOf: TypeError, message: /Table/ }, 'any object is not a Table')
  const table = new addon.Table()
  t.throws(make({ files: [{ ...ok, table, offset: -4096 }] }), { instanceOf: RangeError, message: /offset/ })
  t.throws(make({ files: [{ ...ok, table, offset: 0, xts: { key: Buffer.alloc(48), unit: 4096, plain64: true } }] }), { instanceOf: RangeError, message: /xts/ })
  t.throws(make({ files: [{ ...ok, table, offset: 0, xts: { key: Buffer.alloc(64), unit: 1000, plain64: true } }] }), { instanceOf: RangeError, message: /xts/ })
  t.throws(make({ files: [{ ...ok, xts: { key: Buffer.alloc(64), unit: 4096, plain64: true } }] }), { instanceOf: TypeError, message: /table/ })
  t.notThrows(make({}))
})

test('table ranges are checked: negative, fractional or past 2^53 starts and empty buffers are refused', (t) => {
  const table = new addon.Table()
  for (const start of [-1, 0.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 53]) {
    t.throws(() => table.publish(start, Buffer.alloc(16)), { instanceOf: RangeError }, `publish(${start})`)
    t.throws(() => table.retract(start), { instanceOf: RangeError }, `retract(${start})`)
  }
  t.throws(() => table.publish(0, Buffer.alloc(0)), { instanceOf: RangeError })
  t.throws(() => table.publish(0, 'bytes' as any), { instanceOf: TypeError })
  t.throws(() => table.publish(2 ** 53 - 8, Buffer.alloc(16)), { instanceOf: RangeError, message: /2\^53/ })
  table.publish(4096, Buffer.alloc(16))
  t.is(table.size(), 1)
  table.retract(4096)
  t.is(table.size(), 0)
})

test('answers are checked against the request: too many bytes, the wrong kind of answer, a bad errno throw, and the reader still gets EIO, once', async (t) => {
  const source = randomBytes(64 * KiB)
  const attempts: string[] = []
  let call = 0
  const m = await mountRaw([{ name: 'data', size: source.length, writable: false }], (session, _kind, id, _file, offset, length) => {
    // Each read gets a different misuse; the third is a right answer.
    const misuse = [
      () => session.replyData(id, Buffer.alloc(length + 1)),
      () => session.replyWrite(id, length),
      () => session.replyError(id, 0),
      () => session.replyError(id, 5000),
    ][call++]
    if (!misuse) return void session.replyData(id, source.subarray(offset, offset + length))
    try {
      misuse()
      attempts.push('accepted')
    } catch (err) {
      attempts.push((err as Error).name)
      // The request was answered (EIO) by the refused call, or is still there for a right answer.
      if (!session.replyError(id, 5)) attempts.push('answered')
    }
  })
  try {
    for (let i = 0; i < 4; i++) {
      const r = await exec('dd', [`if=${m.path}/data`, 'bs=4k', 'count=1', `skip=${i}`, 'iflag=direct', 'of=/dev/null', 'status=none']).then(
        () => 'ok',
        (e: { stderr?: string }) => String(e.stderr),
      )
      t.regex(r, /Input\/output error/, `read ${i}`)
    }
    t.deepEqual(attempts, ['RangeError', 'answered', 'TypeError', 'answered', 'RangeError', 'answered', 'RangeError'])
    const { stdout } = await exec('dd', [`if=${m.path}/data`, 'bs=4k', 'count=1', 'skip=5', 'iflag=direct', 'status=none'], { encoding: 'buffer' })
    t.true(stdout.equals(source.subarray(5 * 4096, 6 * 4096)))
  } finally {
    await m.unmount()
  }
  t.throws(() => m.session.replyError(0, 5), { instanceOf: RangeError, message: /request id/ })
  t.false(m.session.retry(1), 'retry() after the unmount: nothing to answer, no throw')
  t.false(m.session.replyData(2, Buffer.alloc(1)))
})

test('unmount() twice and close() before unmount() are refused; the stopped event says it was asked for and ended', async (t) => {
  const m = await mountRaw([{ name: 'data', size: 4096, writable: false }], () => {})
  t.throws(() => m.session.close(), { message: /before unmount/ })
  m.session.unmount()
  t.throws(() => m.session.unmount(), { message: /already/ })
  const stop = await within(20_000, 'the stopped event', m.stopped)
  t.true(stop.requested)
  t.true(stop.ended)
  t.regex(stop.detail, /unmounted/)
  m.session.close()
  await m.dir.cleanup()
})
