import type { ExecutionContext } from 'ava'
import { randomInt } from 'node:crypto'

/**
 * Randomness for tests that draw ranges, sizes or bytes, from a seed: TEST_SEED when set (to
 * replay a failure), else a fresh one. A failing test logs its seed and the command that replays
 * it, as the fuzz suites do with FUZZ_SEED (test/helpers/fuzz.ts).
 */
export class Random {
  private state: number

  constructor(readonly seed: number) {
    this.state = seed >>> 0
  }

  /** The next 32 random bits (mulberry32: small, fast, and plenty for choosing test inputs). */
  u32(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0
    let z = this.state
    z = Math.imul(z ^ (z >>> 15), z | 1)
    z ^= z + Math.imul(z ^ (z >>> 7), z | 61)
    return (z ^ (z >>> 14)) >>> 0
  }

  /** A float in [0, 1). */
  next(): number {
    return this.u32() / 2 ** 32
  }

  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n)
  }

  bytes(n: number): Buffer {
    const out = Buffer.allocUnsafe(n)
    let i = 0
    for (; i + 4 <= n; i += 4) out.writeUInt32LE(this.u32(), i)
    for (let v = this.u32(); i < n; i++, v >>>= 8) out[i] = v & 0xff
    return out
  }
}

/** `t`'s Random: seeded from TEST_SEED or at random; the seed is logged when the test fails. */
export function randomFor(t: ExecutionContext): Random {
  const fromEnv = process.env.TEST_SEED
  const seed = fromEnv !== undefined && fromEnv !== '' ? Number(fromEnv) : randomInt(2 ** 31)
  if (!Number.isSafeInteger(seed)) throw new Error(`TEST_SEED must be an integer, got ${fromEnv}`)
  t.teardown(() => {
    if (!t.passed) t.log(`random seed ${seed}: replay with TEST_SEED=${seed} npx ava <this file> --match '${t.title}'`)
  })
  return new Random(seed)
}
