import test from 'ava'
import { getEventListeners } from 'node:events'
import { StopGate } from '../../src/storage/stop-gate.js'

test('many requests in flight on one gate: no listener-leak warning, and all of them are aborted at the stop', async (t) => {
  const warnings: string[] = []
  const onWarning = (w: Error) => warnings.push(`${w.name}: ${w.message}`)
  process.on('warning', onWarning)
  t.teardown(() => process.off('warning', onWarning))
  const gate = new StopGate(undefined, { writable: false })
  // A request listens on its signal for as long as it is in flight, as the storage retries do.
  const inFlight = Array.from({ length: 64 }, () => {
    const { signal } = gate.forRead()
    return new Promise<unknown>((resolve) => signal.addEventListener('abort', () => resolve(signal.reason), { once: true }))
  })
  gate.stop()
  const reasons = await Promise.all(inFlight)
  t.true(reasons.every((r) => r instanceof Error && /no longer sent/.test(r.message)))
  // Warnings are emitted on the next tick.
  await new Promise((resolve) => setImmediate(resolve))
  t.deepEqual(
    warnings.filter((w) => w.startsWith('MaxListenersExceededWarning')),
    [],
  )
})

test("a request's signal is linked to the gate only while it is in flight: nothing stays behind on the gate once it has settled", (t) => {
  const gate = new StopGate(undefined, { writable: true })
  // The gate's own signals, which every request links to.
  const inner = gate as unknown as { reads: AbortController; writes: AbortController }
  const gateSignals = [inner.reads.signal, inner.writes.signal]
  const before = gateSignals.map((s) => getEventListeners(s, 'abort').length)
  for (let i = 0; i < 1000; i++) {
    const caller = new AbortController()
    const read = gate.forRead(caller.signal)
    const write = gate.forWrite(caller.signal)
    read.unlink()
    write.unlink()
    t.is(getEventListeners(caller.signal, 'abort').length, 0)
  }
  t.deepEqual(
    gateSignals.map((s) => getEventListeners(s, 'abort').length),
    before,
  )
  // The caller's abort still reaches a linked signal, with its reason.
  const caller = new AbortController()
  const read = gate.forRead(caller.signal)
  caller.abort(new Error('the reader went away'))
  t.is((read.signal.reason as Error).message, 'the reader went away')
})
