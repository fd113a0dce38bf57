/**
 * One signal that aborts, with the same reason, when any of `signals` does, and `unlink()`, which
 * takes its listeners off them again. Not AbortSignal.any: on Node 20 a long-lived source signal
 * keeps a reference for every signal made from it until it aborts itself, which grows without
 * bound on a path that runs once per request.
 */
export function linkSignals(...signals: (AbortSignal | undefined)[]): { signal: AbortSignal; unlink(): void } {
  const controller = new AbortController()
  const linked: { s: AbortSignal; onAbort: () => void }[] = []
  const unlink = (): void => {
    for (const { s, onAbort } of linked.splice(0)) s.removeEventListener('abort', onAbort)
  }
  for (const s of signals) {
    if (!s) continue
    if (s.aborted) {
      unlink()
      controller.abort(s.reason)
      break
    }
    const onAbort = (): void => {
      unlink()
      controller.abort(s.reason)
    }
    s.addEventListener('abort', onAbort, { once: true })
    linked.push({ s, onAbort })
  }
  return { signal: controller.signal, unlink }
}
