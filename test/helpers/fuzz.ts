import fc from 'fast-check'

/**
 * fast-check settings shared by the fuzz suites: a fixed number of runs, and a seed from
 * FUZZ_SEED when given, so that a failure (fast-check prints its seed and path) can be replayed:
 * FUZZ_SEED=<seed> npx ava dist/test/<file>.test.js
 */
export function fuzzParameters<T>(numRuns: number): fc.Parameters<T> {
  const seed = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : undefined
  return { numRuns, ...(seed !== undefined ? { seed } : {}), endOnFailure: true }
}

/** Values that break parsers: wrong types, boundaries, and look-alikes of the real values. */
export const hostileValue: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 3, arbitrary: fc.jsonValue({ maxDepth: 2 }) },
  {
    weight: 3,
    arbitrary: fc.constantFrom<unknown>(
      0,
      1,
      -1,
      0.5,
      511,
      512,
      4096,
      2 ** 31 - 1,
      2 ** 31,
      2 ** 32 - 1,
      2 ** 32,
      2 ** 53,
      1e308,
      -0,
      '0',
      '1',
      '-1',
      '4096',
      '16777216',
      '18446744073709551615',
      '99999999999999999999',
      '1e3',
      '0x10',
      ' 1',
      '',
      'dynamic',
      'crypt',
      'linear',
      'luks2',
      'raw',
      'luks1',
      'pbkdf2',
      'argon2i',
      'argon2id',
      'scrypt',
      'sha1',
      'sha256',
      'sha512',
      'shake128',
      'nohash',
      'md5',
      'aes-xts-plain64',
      'cipher_null-ecb',
      'aes-cbc-essiv:sha256',
      '!!!!',
      'AAAA',
      '=',
      'A'.repeat(44),
      [],
      ['0'],
      ['1'],
      ['0', '0'],
      ['x'],
      [0],
      {},
      { mandatory: [] },
      { mandatory: ['x'] },
      { mandatory: 'x' },
      null,
      true,
      false,
    ),
  },
)

type Json = Record<string, unknown> | unknown[]

/** Every path (as keys) to a value inside a JSON tree, the root excluded. */
export function pathsOf(value: unknown, prefix: string[] = []): string[][] {
  if (typeof value !== 'object' || value === null) return []
  const out: string[][] = []
  for (const [k, v] of Object.entries(value)) {
    out.push([...prefix, k])
    out.push(...pathsOf(v, [...prefix, k]))
  }
  return out
}

export type Mutation = { op: 'replace' | 'delete' | 'add'; at: number; key: string; value: unknown }

export const mutation: fc.Arbitrary<Mutation> = fc.record({
  op: fc.constantFrom<'replace' | 'delete' | 'add'>('replace', 'replace', 'replace', 'delete', 'add'),
  at: fc.nat(),
  key: fc.oneof(fc.constantFrom('0', '1', '7', '31', '32', 'x', 'priority', 'flags', 'integrity', 'requirements', '__proto__', 'extra'), fc.string({ maxLength: 8 })),
  value: hostileValue,
})

/** Applies mutations to a deep copy of `base` at paths picked by index (modulo the paths there are). */
export function mutate(base: unknown, mutations: Mutation[]): unknown {
  const copy = JSON.parse(JSON.stringify(base)) as unknown
  for (const m of mutations) {
    // A copy each time: constantFrom hands out the same [] or {} to several mutations, and adding
    // one into itself made a cycle that pathsOf followed until the stack overflowed.
    const value = structuredClone(m.value)
    const paths = pathsOf(copy)
    if (paths.length === 0) break
    const p = paths[m.at % paths.length]!
    let parent = copy as Json
    for (const k of p.slice(0, -1)) parent = (parent as Record<string, unknown>)[k] as Json
    const last = p[p.length - 1]!
    const target = (parent as Record<string, unknown>)[last]
    if (m.op === 'delete') {
      if (Array.isArray(parent)) parent.splice(Number(last), 1)
      else delete (parent as Record<string, unknown>)[last]
    } else if (m.op === 'add' && typeof target === 'object' && target !== null) {
      if (Array.isArray(target)) target.push(value)
      else Object.defineProperty(target, m.key, { value, enumerable: true, writable: true, configurable: true })
    } else {
      ;(parent as Record<string, unknown>)[last] = value
    }
  }
  return copy
}
