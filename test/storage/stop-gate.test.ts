import test from 'ava'
import { StopGate } from '../../src/storage/stop-gate.js'

test('many requests in flight on one gate: no listener-leak warning, and all of them are aborted at the stop', async (t) => {
  const warnings: string[] = []
  const onWarning = (w: Error) => warnings.push(`${w.name}: ${w.message}`)
  process.on('warning', onWarning)
  t.teardown(() => process.off('warning', onWarning))
  const gate = new StopGate(undefined, { writable: false })
  // A request listens on its signal for as long as it is in flight, as the storage retries do.
  const inFlight = Array.from({ length: 64 }, () => {
    const signal = gate.forRead()
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
