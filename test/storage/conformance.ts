// The RangeSource contract, checked the same way for every source and layer (file, blob, slice,
// block cache, LUKS2 volume, dm-verity, the test's memory source): exact bytes for any range,
// empty reads, refused ranges, concurrent readers, readInto, nothing written after a rejected
// readInto, close, and for writable sources write, flush and read-back. Each source's test file runs it on its subjects; what is particular
// to a source stays in its own tests.
import test from 'ava'
import { setTimeout as sleep } from 'node:timers/promises'
import { isWritable, readInto, type RangeSource, type WritableRangeSource } from '../../src/storage/range-source.js'
import { randomFor, type Random } from '../helpers/random.js'
import { sameBytes } from '../helpers/bytes.js'

export interface Opened {
  source: RangeSource
  /** What the source must show, byte for byte (its size is the source's). */
  bytes: Buffer
  /** How many reads reached what the source wraps: a refused range must never get there. */
  readsBelow?: () => number
  /** After close(): whether what the source owns was closed too (a slice owns nothing: false). */
  closedBelow?: () => boolean
  /** Writable sources: what is durable below after flush() and close(), in the source's coordinates. */
  persisted?: () => Promise<Buffer>
  /** Removes what open() made (temporary files). */
  cleanup?: () => Promise<void>
  /**
   * Makes what the source reads from fail from now on, some parts sooner than others (the hash
   * tree at once while the data is still on its way): its reads must reject, and never write the
   * caller's buffer once they have.
   */
  failBelow?: () => void
}

export interface Subject {
  /** How the tests name it, e.g. "BlockCache over a MemorySource". */
  name: string
  open(): Promise<Opened>
  writable?: boolean
  /** Writes below have to be aligned to this many bytes (a page blob: 512); default 1. */
  writeUnit?: number
  /** Whether closing releases what the source owns (default true; a slice: false). */
  owns?: boolean
}

/** Ranges every source gets wrong first: the edges, unit and block boundaries, the whole. */
function edgeRanges(size: number): [number, number][] {
  const r: [number, number][] = [
    [0, 1],
    [0, Math.min(size, 4096)],
    [size - 1, 1],
    [0, size],
  ]
  for (const edge of [511, 512, 4095, 4096, 65_535, 1_048_575, 4 * 1_048_576 - 3]) {
    if (edge + 2 <= size) r.push([edge, 2], [edge - 1, Math.min(size - edge + 1, 70_001)])
  }
  if (size > 8192) r.push([size - 4097, 4097], [1, size - 2])
  return r
}

function randomRanges(rng: Random, size: number, n: number, maxLength = 300_000): [number, number][] {
  return Array.from({ length: n }, () => {
    const offset = rng.int(size)
    return [offset, 1 + rng.int(Math.min(size - offset, maxLength))] as [number, number]
  })
}

async function withOpened(subject: Subject, fn: (o: Opened) => Promise<void>): Promise<void> {
  const opened = await subject.open()
  try {
    await fn(opened)
  } finally {
    await opened.source.close().catch(() => {})
    await opened.cleanup?.()
  }
}

export function conformance(subject: Subject): void {
  const name = subject.name

  test(`${name}: RangeSource: the size, and exactly the bytes of any range (edges, boundaries, random ranges)`, async (t) => {
    const rng = randomFor(t)
    await withOpened(subject, async ({ source, bytes }) => {
      t.is(source.size, bytes.length)
      t.is(isWritable(source), subject.writable ?? false, subject.writable ? 'writable: write() and flush()' : 'read-only: no write()')
      if (!subject.writable) {
        t.is((source as Partial<WritableRangeSource>).write, undefined, 'no write() on a read-only source')
        t.is((source as Partial<WritableRangeSource>).flush, undefined, 'no flush() on a read-only source')
      }
      let ok = true
      for (const [offset, length] of [...edgeRanges(source.size), ...randomRanges(rng, source.size, 40)]) {
        ok &&= sameBytes(t, await source.read(offset, length), bytes.subarray(offset, offset + length), `read(${offset}, ${length})`)
      }
      t.true(ok)
    })
  })

  test(`${name}: RangeSource: empty reads anywhere, up to the very end, are empty`, async (t) => {
    await withOpened(subject, async ({ source }) => {
      for (const offset of [0, Math.floor(source.size / 2), source.size]) {
        t.is((await source.read(offset, 0)).length, 0, `read(${offset}, 0)`)
        await t.notThrowsAsync(readInto(source, offset, Buffer.alloc(0)), `readInto(${offset}, empty)`)
      }
    })
  })

  test(`${name}: RangeSource: a range past the end, negative or fractional is a rejected promise, never truncated; the source stays usable`, async (t) => {
    await withOpened(subject, async ({ source, bytes, readsBelow }) => {
      const before = readsBelow?.()
      const refused = async (what: string, call: () => Promise<unknown>) => {
        let p: Promise<unknown> | undefined
        t.notThrows(() => {
          p = call()
        }, `${what}: no synchronous throw`)
        return t.throwsAsync(p!, { instanceOf: RangeError }, what)
      }
      const past = await refused('read past the end', () => source.read(source.size - 1, 2))
      t.regex(past?.message ?? '', /past the end/)
      t.true(past?.message.includes(String(source.size)), `the message names the size: ${past?.message}`)
      await refused('read at the end', () => source.read(source.size, 1))
      await refused('negative offset', () => source.read(-1, 10))
      await refused('negative length', () => source.read(0, -1))
      await refused('fractional offset', () => source.read(0.5, 10))
      await refused('readInto past the end', () => readInto(source, source.size - 10, Buffer.alloc(11)))
      if (before !== undefined) t.is(readsBelow!(), before, 'refused ranges never reach what the source wraps')
      sameBytes(t, await source.read(0, 16), bytes.subarray(0, 16), 'still usable afterwards')
    })
  })

  test(`${name}: RangeSource: concurrent readers each get their own bytes`, async (t) => {
    const rng = randomFor(t)
    await withOpened(subject, async ({ source, bytes }) => {
      const ranges = [...randomRanges(rng, source.size, 24, 100_000), [0, 1] as [number, number], [source.size - 1, 1] as [number, number]]
      const overlapping = Array.from({ length: 8 }, (_, i) => [Math.floor(source.size / 3) + i * 100, 5000] as [number, number]).filter(([o, l]) => o + l <= source.size)
      const all = [...ranges, ...overlapping]
      const got = await Promise.all(all.map(([offset, length]) => source.read(offset, length)))
      t.true(all.every(([offset, length], i) => sameBytes(t, got[i]!, bytes.subarray(offset, offset + length), `read(${offset}, ${length})`)))
    })
  })

  test(`${name}: RangeSource: readInto fills exactly the caller's buffer with what read() returns`, async (t) => {
    const rng = randomFor(t)
    await withOpened(subject, async ({ source, bytes }) => {
      for (const [offset, length] of [...edgeRanges(source.size).slice(0, 6), ...randomRanges(rng, source.size, 10)]) {
        // A window in a larger buffer: the bytes around it stay as they were.
        const whole = Buffer.alloc(length + 64, 0xee)
        const target = whole.subarray(32, 32 + length)
        await readInto(source, offset, target)
        if (source.readInto) await source.readInto(offset, target)
        sameBytes(t, target, bytes.subarray(offset, offset + length), `readInto(${offset}, ${length})`)
        t.true(whole.subarray(0, 32).every((b) => b === 0xee) && whole.subarray(32 + length).every((b) => b === 0xee), `readInto(${offset}, ${length}) wrote outside its target`)
        sameBytes(t, target, await source.read(offset, length), `readInto == read at ${offset}`)
      }
    })
  })

  test(`${name}: RangeSource: once readInto has rejected, the caller's buffer is never written again`, async (t) => {
    const ranges = (size: number): [number, number][] => {
      const middle = Math.floor(size / 2 / 4096) * 4096
      return [
        [0, Math.min(size, 1024 * 1024)],
        [middle, Math.min(size - middle, 300_000)],
        [Math.max(0, size - 5000), Math.min(size, 5000)],
      ]
    }
    // A read either resolves with exactly its bytes, or rejects; then what it left running below
    // (a transfer, a copy) may not write its buffer any more.
    const watch = async (source: RangeSource, bytes: Buffer, offset: number, length: number, signal?: AbortSignal) => {
      const target = Buffer.alloc(length, 0x5a)
      try {
        await readInto(source, offset, target, signal)
        return { target, ok: target.equals(bytes.subarray(offset, offset + length)) }
      } catch {
        return { target, ok: true, snapshot: Buffer.from(target) }
      }
    }
    const check = async (results: { target: Buffer; ok: boolean; snapshot?: Buffer }[]) => {
      t.true(
        results.every((r) => r.ok),
        'a read that resolved has its bytes',
      )
      await sleep(300)
      for (const [i, r] of results.entries()) if (r.snapshot) t.true(r.target.equals(r.snapshot), `read ${i}: the buffer was written after readInto rejected`)
    }
    // Aborted at once, a microtask later and a millisecond later: a source that stops on its
    // signal rejects, with whatever it had under way below perhaps still running.
    let failsBelow = false
    await withOpened(subject, async ({ source, bytes, failBelow }) => {
      failsBelow = failBelow !== undefined
      const runs = ranges(source.size).flatMap(([offset, length]) =>
        (['now', 'microtask', 'ms'] as const).map((when) => {
          const ac = new AbortController()
          const run = watch(source, bytes, offset, length, ac.signal)
          if (when === 'now') ac.abort()
          else if (when === 'microtask') queueMicrotask(() => ac.abort())
          else setTimeout(() => ac.abort(), 1)
          return run
        }),
      )
      await check(await Promise.all(runs))
    })
    if (!failsBelow) return
    // Reads that fail below, on a fresh source (nothing cached yet).
    await withOpened(subject, async ({ source, bytes, failBelow }) => {
      failBelow!()
      const results = await Promise.all(ranges(source.size).map(([offset, length]) => watch(source, bytes, offset, length)))
      t.true(
        results.some((r) => r.snapshot),
        'reads that fail below reject',
      )
      await check(results)
    })
  })

  test(`${name}: RangeSource: close() resolves and ${subject.owns === false ? 'leaves what it views open' : 'closes what it owns'}`, async (t) => {
    const opened = await subject.open()
    try {
      await opened.source.read(0, 1)
      await t.notThrowsAsync(opened.source.close())
      if (opened.closedBelow) t.is(opened.closedBelow(), subject.owns ?? true)
    } finally {
      await opened.cleanup?.()
    }
  })

  if (subject.writable) writableConformance(subject)
}

function writableConformance(subject: Subject): void {
  test(`${subject.name}: WritableRangeSource: writes read back at once, are durable after flush and close, and never grow the source`, async (t) => {
    const rng = randomFor(t)
    const unit = subject.writeUnit ?? 1
    const opened = await subject.open()
    try {
      const source = opened.source as WritableRangeSource
      const expected = Buffer.from(opened.bytes)
      const size = source.size
      const at = (n: number) => Math.floor(n / unit) * unit
      const edits: [number, Buffer][] = [
        [0, rng.bytes(unit)],
        [at(4095), rng.bytes(unit === 1 ? 3 : unit)],
        [at(10_000), rng.bytes(at(20_000) || unit)],
        [size - unit * (unit === 1 ? 7 : 1), rng.bytes(unit === 1 ? 7 : unit)],
        [at(rng.int(size - 70_000)), rng.bytes(at(65_536))],
      ]
      for (const [offset, data] of edits) {
        await source.write(offset, Buffer.from(data))
        data.copy(expected, offset)
      }
      for (const [offset, data] of edits) sameBytes(t, await source.read(offset, data.length), expected.subarray(offset, offset + data.length), `read back at ${offset}`)
      let refused: Promise<void> | undefined
      t.notThrows(() => {
        refused = source.write(size - unit, Buffer.alloc(2 * unit))
      }, 'a write past the end is a rejected promise, not a synchronous throw')
      const past = await t.throwsAsync(refused!, { instanceOf: RangeError })
      t.regex(past?.message ?? '', /past the end/)
      t.is(source.size, size, 'writes never grow the source')
      await source.flush()
      sameBytes(t, await source.read(0, size), expected, 'everything reads back after the flush')
      await source.close()
      if (opened.persisted) sameBytes(t, await opened.persisted(), expected, 'durable below after flush and close')
    } finally {
      await opened.source.close().catch(() => {})
      await opened.cleanup?.()
    }
  })
}
