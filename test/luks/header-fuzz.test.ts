// Property-based fuzzing of the LUKS2 header reader and the unlock: whatever the storage holds,
// the answer is a header or a LuksError with a code, quickly; never a TypeError, a hang, or a
// volume key for a key that is not the image's. Replay a failure with FUZZ_SEED=<seed>.
import test from 'ava'
import fc from 'fast-check'
import { createHash, randomBytes } from 'node:crypto'
import { formatLuks2, DATA_OFFSET, HDR_SIZE } from '../../src/luks/format.js'
import { readLuks2Header, payloadRange } from '../../src/luks/header.js'
import { unlockVolumeKey } from '../../src/luks/unlock.js'
import { LuksError } from '../../src/luks/errors.js'
import { checkRange, type RangeSource } from '../../src/storage/range-source.js'
import { fuzzParameters, mutate, mutation } from '../helpers/fuzz.js'

const PREFIX = 2 * HDR_SIZE
let header: Buffer
let baseJson: Record<string, unknown>
const key = randomBytes(32)
// Tight, so that a mutated KDF cannot make a run slow.
const budget = { pbkdf2Iterations: 20_000, argon2MiBPasses: 8, argon2MemoryKiB: 8 * 1024 }

test.before(async () => {
  const f = await formatLuks2({ passphrase: key, iterations: 1000 })
  f.volumeKey.fill(0)
  header = f.header
  const json = header.subarray(4096, HDR_SIZE)
  baseJson = JSON.parse(json.subarray(0, json.indexOf(0)).toString('utf8')) as Record<string, unknown>
})

/** The image as storage serves it: a replaced header prefix over the real keyslot area and payload. */
class OverlaySource implements RangeSource {
  readonly size: number
  constructor(
    private readonly prefix: Buffer,
    size = DATA_OFFSET + 64 * 1024,
  ) {
    this.size = size
  }

  async read(offset: number, length: number): Promise<Buffer> {
    checkRange(this.size, offset, length)
    const out = Buffer.alloc(length)
    header.copy(out, 0, Math.min(offset, header.length), Math.min(offset + length, header.length))
    if (offset < this.prefix.length) this.prefix.copy(out, 0, offset, Math.min(offset + length, this.prefix.length))
    return out
  }

  async close(): Promise<void> {}
}

/** Both binary headers with `json` in their JSON areas and valid checksums (what an attacker can write). */
function withJson(primary: string, secondary: string = primary): Buffer {
  const prefix = Buffer.from(header.subarray(0, PREFIX))
  for (const [offset, text] of [
    [0, primary],
    [HDR_SIZE, secondary],
  ] as const) {
    const area = prefix.subarray(offset, offset + HDR_SIZE)
    area.fill(0, 4096)
    Buffer.from(text).copy(area, 4096, 0, HDR_SIZE - 4096 - 1)
    area.fill(0, 448, 512)
    createHash('sha256').update(area).digest().copy(area, 448)
  }
  return prefix
}

/** Reads the header and tries a key; returns what happened, and fails on anything but a LuksError. */
async function attempt(t: import('ava').ExecutionContext, prefix: Buffer, tryKey: Buffer): Promise<{ copy?: string; opened?: boolean; code?: string }> {
  const source = new OverlaySource(prefix)
  try {
    const h = await readLuks2Header(source)
    payloadRange(h, source.size)
    const { volumeKey } = await unlockVolumeKey(source, h, tryKey, { budget })
    volumeKey.fill(0)
    return { copy: h.copy, opened: true }
  } catch (err) {
    if (!(err instanceof LuksError) || !/^LUKS[A-Z0-9_]*$/.test(err.code)) {
      t.log((err as Error).stack)
      throw new Error(`not a LuksError with a code: ${String((err as Error).stack ?? err)}`)
    }
    return { code: err.code }
  }
}

test('mutated JSON in both copies: a LuksError with a code, and a wrong key never opens', async (t) => {
  await fc.assert(
    fc.asyncProperty(fc.array(mutation, { minLength: 1, maxLength: 4 }), async (ms) => {
      const r = await attempt(t, withJson(JSON.stringify(mutate(baseJson, ms))), randomBytes(32))
      if (r.opened) throw new Error('a random key opened the image')
    }),
    fuzzParameters(250),
  )
  t.pass()
})

test('a mutated primary over an intact secondary: the secondary is used when the primary is invalid, and the right key opens it', async (t) => {
  await fc.assert(
    fc.asyncProperty(fc.array(mutation, { minLength: 1, maxLength: 3 }), async (ms) => {
      const r = await attempt(t, withJson(JSON.stringify(mutate(baseJson, ms)), JSON.stringify(baseJson)), key)
      // Either the primary is still valid (and may refuse, or open), or the secondary opens.
      if (r.copy === 'secondary' && !r.opened) throw new Error('the intact secondary did not open')
      if (r.code === 'LUKS_HEADER_CORRUPT') throw new Error('the intact secondary was not used')
    }),
    fuzzParameters(150),
  )
  t.pass()
})

test('random bytes and damaged binary headers: a LuksError with a code', async (t) => {
  const damaged = fc.record({
    bytes: fc.array(fc.record({ at: fc.nat({ max: 1023 }), value: fc.integer({ min: 0, max: 255 }) }), { minLength: 1, maxLength: 6 }),
    recompute: fc.boolean(),
    copy: fc.constantFrom(0, HDR_SIZE),
  })
  await fc.assert(
    fc.asyncProperty(damaged, async ({ bytes, recompute, copy }) => {
      const prefix = Buffer.from(header.subarray(0, PREFIX))
      for (const b of bytes) prefix[copy + b.at] = b.value
      if (recompute) {
        const area = prefix.subarray(copy, copy + HDR_SIZE)
        area.fill(0, 448, 512)
        const alg = area.subarray(72, 104).toString('latin1').replace(/\0.*$/s, '')
        try {
          createHash(alg).update(area).digest().copy(area, 448)
        } catch {
          /* an unknown algorithm: leave the field zero */
        }
      }
      await attempt(t, prefix, randomBytes(32))
    }),
    fuzzParameters(150),
  )
  await fc.assert(
    fc.asyncProperty(fc.uint8Array({ minLength: 0, maxLength: PREFIX }), async (bytes) => {
      await attempt(t, Buffer.from(bytes), randomBytes(32))
    }),
    fuzzParameters(50),
  )
  t.pass()
})
