import test from 'ava'
import { FetchScheduler } from '../../src/cache/fetch-scheduler.js'
import type { Extent } from '../../src/cache/extent.js'

const extent = (start: number): Extent => ({ start, length: 4096, pins: 0, prefetched: false, consumed: false, uploading: 0, gone: false, promise: Promise.resolve() })

test('readahead keeps its share while a random reader has its own fetches in flight', (t) => {
  const s = new FetchScheduler(12)
  const running: Extent[] = []
  // Four random readers, each with a fetch under way (fio randread, 4 jobs).
  for (let i = 0; i < 4; i++) {
    const e = extent(i * 4096)
    s.submit(e, () => running.push(e), false)
    s.noteRandomDemand(e)
  }
  t.is(running.length, 4)
  const ahead = Array.from({ length: 8 }, (_, i) => ({ ...extent(1 << 30), start: (1 << 30) + i * 8 * 1024 * 1024, prefetched: true }))
  for (const e of ahead) s.submit(e, () => running.push(e), true)
  // The throttle's share of readahead (3 to start with) runs beside them: it is counted apart from the random fetches.
  t.is(running.length - 4, s.throttle.limit)
  t.true(s.throttle.limit >= 1)
})

test('without a random reader, readahead takes every slot but the quarter kept for demand', (t) => {
  const s = new FetchScheduler(12)
  let running = 0
  for (let i = 0; i < 20; i++) s.submit({ ...extent(i * 4096), prefetched: true }, () => running++, true)
  t.is(running, 9)
})

test('a queued readahead that a reader asks for runs at once as a demand fetch, and is not counted as readahead', (t) => {
  const s = new FetchScheduler(4)
  const started: number[] = []
  const es = Array.from({ length: 6 }, (_, i) => ({ ...extent(i * 4096), prefetched: true }))
  for (const e of es) s.submit(e, () => started.push(e.start), true)
  t.is(started.length, 3)
  t.true(s.promote(es[5]!))
  t.deepEqual(started, [0, 4096, 8192, 5 * 4096])
  // Its end frees a slot without counting a readahead request as ended.
  s.finished(es[5]!, true)
  s.pump()
  t.is(started.length, 4, 'three of four requests running: readahead waits for one to end')
  s.finished(es[0]!, true)
  s.pump()
  t.is(started.length, 5)
})
