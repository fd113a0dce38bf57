// The bulk XTS path (native addon) against node:crypto's own AES-XTS, unit by unit; and the
// pure-JS path, which encfs takes where the addon is not built, forced here although it is built:
// the same bytes as the native path, and the plaintext of images made by real cryptsetup.
import test from 'ava'
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { SectorCipher } from '../../src/luks/sector-cipher.js'
import { optionalAddon } from '../../src/native/addon.js'
import { FileSource } from '../../src/storage/file-source.js'
import { readLuksHeader } from '../../src/luks/header.js'
import { unlockAnyVolumeKey } from '../../src/luks/volume-key.js'
import { makeEncryptedImage, type TestImage } from '../helpers/images.js'
import { sameBytes } from '../helpers/bytes.js'

const images: TestImage[] = []
test.after.always(async () => {
  for (const img of images) await img.cleanup()
})

test('the native addon is loaded, so data units go through the bulk path', (t) => {
  t.truthy(optionalAddon()?.xtsCrypt, 'npm run setup builds native/; without it encfs falls back to one cipher per unit')
})

const XTS = [
  ['aes-xts-plain64', 64, 4096],
  ['aes-xts-plain64', 32, 512],
  ['aes-xts-plain', 64, 2048],
] as const

for (const [spec, keySize, unit] of XTS) {
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

  test(`${spec}, ${keySize * 8}-bit key, ${unit}-byte units: the pure-JS path gives the native path's bytes, both ways and in place`, (t) => {
    const key = randomBytes(keySize)
    const data = randomBytes(unit * 64)
    const first = spec === 'aes-xts-plain' ? 2 ** 32 - 16 : 12_345
    const native = new SectorCipher(spec, key)
    const js = new SectorCipher(spec, key, { native: false })
    sameBytes(t, js.decrypt(data, first, unit), native.decrypt(data, first, unit), 'decrypt')
    sameBytes(t, js.encrypt(data, first, unit), native.encrypt(data, first, unit), 'encrypt')
    const inPlace = Buffer.from(data)
    js.decryptInPlace(inPlace, first, unit)
    sameBytes(t, inPlace, native.decrypt(data, first, unit), 'decrypt in place')
    js.destroy()
    native.destroy()
  })
}

for (const o of [{ sectorSize: 4096 }, { sectorSize: 512 }, { cipher: 'aes-xts-plain', keySizeBits: 256 }] as const) {
  test(`the pure-JS path decrypts an image made by cryptsetup (${JSON.stringify(o)}) to its plaintext, and encrypts it back`, async (t) => {
    const img = await makeEncryptedImage({ fsSizeMiB: 8, ...o })
    images.push(img)
    const source = await FileSource.open(img.image)
    const header = await readLuksHeader(source)
    const { volumeKey } = await unlockAnyVolumeKey(source, header, img.key)
    await source.close()
    const plain = await readFile(img.plain)
    const ciphertext = (await readFile(img.image)).subarray(img.payloadOffset, img.payloadOffset + plain.length)
    const js = new SectorCipher(header.segment.encryption, volumeKey, { native: false })
    volumeKey.fill(0)
    sameBytes(t, js.decrypt(ciphertext, 0, header.segment.sectorSize), plain, 'decrypted by the pure-JS path')
    sameBytes(t, js.encrypt(plain, 0, header.segment.sectorSize), ciphertext, 'encrypted back to what cryptsetup wrote')
    js.destroy()
  })
}
