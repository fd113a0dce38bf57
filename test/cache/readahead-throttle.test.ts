import test from 'ava'
import { ReadaheadThrottle, THROTTLE_START } from '../../src/cache/readahead-throttle.js'

function clock() {
  let t = 0
  return { now: () => t, advance: (ms: number) => (t += ms) }
}

test('a random reader whose fetches stay near their floor lets readahead grow, one request per round of fetches, up to the most allowed', (t) => {
  const c = clock()
  const th = new ReadaheadThrottle(9, c.now)
  t.is(th.limit, THROTTLE_START)
  th.observe(10, c.now(), 0)
  for (let i = 0; i < 200; i++) {
    c.advance(12)
    th.observe(12, c.now() - 12, 4)
  }
  t.is(th.limit, 9)
})

test('a fetch over four times the floor halves readahead once per congestion event, never below 1', (t) => {
  const c = clock()
  const th = new ReadaheadThrottle(9, c.now)
  th.observe(10, 0, 0)
  for (let i = 0; i < 200; i++) th.observe(11, c.now(), 3)
  t.is(th.limit, 9)
  c.advance(100)
  const started = c.now() - 80
  th.observe(80, started, 9)
  t.is(th.limit, 4)
  // Fetches that were already under way when it halved say nothing new.
  th.observe(90, started + 1, 4)
  t.is(th.limit, 4)
  c.advance(100)
  th.observe(90, c.now() - 90, 4)
  t.is(th.limit, 2)
  c.advance(100)
  th.observe(90, c.now() - 90, 2)
  c.advance(100)
  th.observe(90, c.now() - 90, 1)
  t.is(th.limit, 1)
})

test('fetches with no readahead beside them only measure the floor; the floor follows storage after a period', (t) => {
  const c = clock()
  const th = new ReadaheadThrottle(9, c.now)
  th.observe(50, 0, 0)
  th.observe(40, 0, 0)
  t.is(th.limit, THROTTLE_START)
  t.is(th.floorMs, 40)
  // Storage got slower for good: two periods later the old floor is forgotten, and 100 ms is no congestion.
  for (let i = 0; i < 3; i++) {
    c.advance(5000)
    th.observe(100, c.now() - 100, 0)
  }
  t.is(th.floorMs, 100)
  th.observe(100, c.now() - 100, 3)
  t.is(th.limit, THROTTLE_START)
})
