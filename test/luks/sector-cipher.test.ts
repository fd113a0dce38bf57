// The bulk XTS path (native addon) against node:crypto's own AES-XTS, unit by unit.
import test from 'ava'
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto'
import { SectorCipher } from '../../src/luks/sector-cipher.js'
import { optionalAddon } from '../../src/native/addon.js'

test('the native addon is loaded, so data units go through the bulk path', (t) => {
  t.truthy(optionalAddon()?.xtsCrypt, 'npm run setup builds native/; without it encfs falls back to one cipher per unit')
})

for (const [spec, keySize, unit] of [['aes-xts-plain64', 64, 4096], ['aes-xts-plain64', 32, 512], ['aes-xts-plain', 64, 2048]] as const) {
  test(`${spec}, ${keySize * 8}-bit key, ${unit}-byte units: same bytes as one node:crypto cipher per unit, both ways`, (t) => {
    const key = randomBytes(keySize)
    const data = randomBytes(unit * 8)
    const first = spec === 'aes-xts-plain' ? 2 ** 32 - 8 : 2 ** 40 + 7 // plain wraps at 2^32; plain64 does not
    const cipher = new SectorCipher(spec, key)
    const dec = cipher.decrypt(data, first, unit)
    const enc = cipher.encrypt(data, first, unit)
    for (let u = 0; u < 8; u++) {
      const sector = first + (u * unit) / 512
      const iv = Buffer.alloc(16)
      iv.writeBigUInt64LE(BigInt(spec === 'aes-xts-plain' ? sector % 2 ** 32 : sector))
      const alg = `aes-${keySize * 4}-xts`
      const slice = data.subarray(u * unit, (u + 1) * unit)
      t.deepEqual(dec.subarray(u * unit, (u + 1) * unit), createDecipheriv(alg, key, iv).update(slice), `decrypt unit ${u}`)
      t.deepEqual(enc.subarray(u * unit, (u + 1) * unit), createCipheriv(alg, key, iv).update(slice), `encrypt unit ${u}`)
    }
    t.deepEqual(cipher.decrypt(enc, first, unit), data, 'round trip')
  })
}
