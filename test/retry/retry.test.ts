// The one retry loop: attempts, budget, backoff, Retry-After, abort and the caller's verdicts.
import test from 'ava'
import { constantBackoff, exponentialBackoff, jitteredRetryAfter, retry, RETRY, STOP, waitFor, type GiveUpReason } from '../../src/retry/retry.js'

function failing(times: number, value = 'ok') {
  const at: number[] = []
  return {
    at,
    fn: async () => {
      at.push(Date.now())
      if (at.length <= times) throw new Error(`failure ${at.length}`)
      return value
    },
  }
}

test('retries until a success, with the backoff between attempts', async (t) => {
  const f = failing(2)
  const retries: number[] = []
  t.is(await retry(f.fn, { attempts: 5, backoff: constantBackoff(30), onRetry: (e) => retries.push(e.attempt) }), 'ok')
  t.is(f.at.length, 3)
  t.deepEqual(retries, [1, 2])
  for (let i = 1; i < f.at.length; i++) t.true(f.at[i]! - f.at[i - 1]! >= 25, `gap ${i}`)
})

test('gives up after the attempts with the last failure as it was', async (t) => {
  const f = failing(10)
  let gaveUp: GiveUpReason | undefined
  const err = await t.throwsAsync(
    retry(f.fn, {
      attempts: 3,
      backoff: constantBackoff(1),
      onGiveUp: (e) => {
        gaveUp = e.reason
      },
    }),
  )
  t.is(err?.message, 'failure 3')
  t.is(f.at.length, 3)
  t.is(gaveUp, 'attempts')
})

test('a final failure is not retried', async (t) => {
  const f = failing(10)
  let gaveUp: GiveUpReason | undefined
  await t.throwsAsync(
    retry(f.fn, {
      attempts: 5,
      backoff: constantBackoff(1),
      classify: () => STOP,
      onGiveUp: (e) => {
        gaveUp = e.reason
      },
    }),
  )
  t.is(f.at.length, 1)
  t.is(gaveUp, 'final')
})

test('no attempt starts after the budget', async (t) => {
  const f = failing(100)
  const started = Date.now()
  let gaveUp: GiveUpReason | undefined
  await t.throwsAsync(
    retry(f.fn, {
      budgetMs: 200,
      backoff: constantBackoff(50),
      onGiveUp: (e) => {
        gaveUp = e.reason
      },
    }),
  )
  t.is(gaveUp, 'budget')
  t.true(f.at.at(-1)! - started <= 200, 'the last attempt started within the budget')
  t.true(f.at.length >= 3 && f.at.length <= 5, `${f.at.length} attempts`)
})

test('Retry-After replaces the backoff, or only raises it (at-least); one beyond the cap ends the retries', async (t) => {
  const instead = failing(1)
  const delays: number[] = []
  await retry(instead.fn, { attempts: 3, backoff: constantBackoff(5000), classify: () => ({ retry: true, retryAfterMs: 100 }), onRetry: (e) => delays.push(e.delayMs) })
  t.true(delays[0]! >= 100 && delays[0]! < 300, `waited ${delays[0]} ms, not the 5 s backoff`)
  const atLeast = failing(1)
  delays.length = 0
  await retry(atLeast.fn, {
    attempts: 3,
    retryAfter: 'at-least',
    backoff: constantBackoff(300),
    classify: () => ({ retry: true, retryAfterMs: 10 }),
    onRetry: (e) => delays.push(e.delayMs),
  })
  t.is(delays[0], 300)
  const capped = failing(5)
  let gaveUp: GiveUpReason | undefined
  await t.throwsAsync(
    retry(capped.fn, {
      attempts: 5,
      maxRetryAfterMs: 1000,
      classify: () => ({ retry: true, retryAfterMs: 3_600_000 }),
      onGiveUp: (e) => {
        gaveUp = e.reason
      },
    }),
  )
  t.is(capped.at.length, 1)
  t.is(gaveUp, 'retry-after')
})

test('an answer can ask for another attempt; the last one is returned when the attempts run out', async (t) => {
  let n = 0
  const res = await retry(async () => ++n, { attempts: 3, backoff: constantBackoff(1), retryResult: (v) => (v < 10 ? RETRY : STOP) })
  t.is(res, 3)
})

test('aborting stops the wait at once with the AbortError', async (t) => {
  const ac = new AbortController()
  const f = failing(10)
  const started = Date.now()
  // Aborted once the 5 s wait has begun (onRetry is told just before it).
  const err = await t.throwsAsync(retry(f.fn, { attempts: 10, backoff: constantBackoff(5000), signal: ac.signal, onRetry: () => setImmediate(() => ac.abort()) }))
  t.is(err?.name, 'AbortError')
  t.true(Date.now() - started < 2000)
  t.is(f.at.length, 1)
})

test('backoffs: exponential within its spread and cap; Retry-After jitter is small', (t) => {
  const full = exponentialBackoff(100, 1000)
  const equal = exponentialBackoff(100, 1000, [0.5, 1])
  for (let i = 0; i < 50; i++) {
    const a = full(3)
    t.true(a >= 0 && a <= 400)
    const b = equal(10)
    t.true(b >= 500 && b <= 1000, 'capped at maxMs')
    const r = jitteredRetryAfter(1000)
    t.true(r >= 1000 && r <= 1350)
  }
})

test('waitFor: true once ready, false after the timeout, a thrown error ends the wait', async (t) => {
  let n = 0
  t.true(await waitFor(async () => ++n >= 3, { intervalMs: 5, timeoutMs: 1000 }))
  t.is(n, 3)
  t.false(await waitFor(async () => false, { intervalMs: 10, timeoutMs: 50 }))
  await t.throwsAsync(
    waitFor(
      async () => {
        throw new Error('exited')
      },
      { intervalMs: 5, timeoutMs: 1000 },
    ),
    { message: 'exited' },
  )
})
