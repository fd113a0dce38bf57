import test from 'ava'
import { createHash, randomBytes } from 'node:crypto'
import { afMerge, afSplit } from '../../src/luks/af.js'

test('split then merge gives the key back, for every hash and key size cryptsetup uses', (t) => {
  for (const hash of ['sha1', 'sha256', 'sha512']) {
    for (const size of [16, 32, 64]) {
      const key = randomBytes(size)
      const material = afSplit(key, 4000, hash, randomBytes)
      t.is(material.length, Math.ceil((size * 4000) / 512) * 512, 'padded to whole sectors')
      t.deepEqual(afMerge(material, size, 4000, hash), key, `${hash}, ${size}-byte key`)
    }
  }
})

test('merge follows the diffusion rule: H(BE32(j) || chunk) per digest-sized chunk, last chunk truncated', (t) => {
  // Two stripes make the rule visible: key = diffuse(S0) xor S1.
  const s0 = Buffer.from(Array.from({ length: 40 }, (_, i) => i))
  const s1 = Buffer.alloc(40)
  const expected = Buffer.concat([
    createHash('sha256')
      .update(Buffer.from([0, 0, 0, 0]))
      .update(s0.subarray(0, 32))
      .digest(),
    createHash('sha256')
      .update(Buffer.from([0, 0, 0, 1]))
      .update(s0.subarray(32))
      .digest()
      .subarray(0, 8),
  ])
  t.deepEqual(afMerge(Buffer.concat([s0, s1]), 40, 2, 'sha256'), expected)
})

test('one changed stripe byte changes the merged key (no stripe is redundant)', (t) => {
  const key = randomBytes(64)
  const material = afSplit(key, 4000, 'sha256', randomBytes)
  material[12345] = material[12345]! ^ 0x80
  t.notDeepEqual(afMerge(material, 64, 4000, 'sha256'), key)
})
