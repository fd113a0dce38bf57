import test from 'ava'
import { SliceSource } from '../../src/storage/slice-source.js'
import { MemorySource } from '../helpers/memory-source.js'
import { Random } from '../helpers/random.js'
import { conformance } from './conformance.js'

conformance({
  name: 'SliceSource',
  owns: false,
  open: async () => {
    const inner = new MemorySource(new Random(7).bytes(3 * 1024 * 1024))
    const source = new SliceSource(inner, 16_384, 2 * 1024 * 1024 + 777)
    return { source, bytes: inner.bytes.subarray(16_384, 16_384 + source.size), readsBelow: () => inner.reads, closedBelow: () => inner.closed }
  },
})

test("a slice asks the inner source for its window at the slice's offset", async (t) => {
  const inner = new MemorySource(100_000)
  const slice = new SliceSource(inner, 16_384, 50_000)
  t.is(slice.size, 50_000)
  t.true((await slice.read(123, 4567)).equals(inner.bytes.subarray(16_384 + 123, 16_384 + 123 + 4567)))
  t.deepEqual(inner.readLog.at(-1), { offset: 16_384 + 123, length: 4567 })
})

test('a slice refuses ranges past its own end even where the inner source has bytes', async (t) => {
  const inner = new MemorySource(100_000)
  const slice = new SliceSource(inner, 1000, 2000)
  await t.throwsAsync(slice.read(1999, 2), { instanceOf: RangeError })
  await t.throwsAsync(slice.read(-1, 1), { instanceOf: RangeError })
  t.is(inner.reads, 0, 'the inner source was never asked')
})

test('a slice that does not fit in the inner source is refused at construction', (t) => {
  const inner = new MemorySource(10_000)
  t.throws(() => new SliceSource(inner, 9000, 1001), { instanceOf: RangeError })
  t.throws(() => new SliceSource(inner, -1, 10), { instanceOf: RangeError })
  t.notThrows(() => new SliceSource(inner, 9000, 1000))
})
