// LUKS1 in userspace, against images made by real cryptsetup (the offline recipes are in
// docs/luks1.md): known plaintext encrypted by cryptsetup, cryptsetup's own volume key, data
// written by encfs that cryptsetup decrypts, and the same header hardening as LUKS2.
import test from 'ava'
import { execFile } from 'node:child_process'
import { copyFile, open, readFile, stat, truncate, writeFile } from 'node:fs/promises'
import { createHash, randomBytes } from 'node:crypto'
import { promisify } from 'node:util'
import path from 'node:path'
import { FileSource } from '../../src/storage/file-source.js'
import { LuksVolume } from '../../src/luks/volume.js'
import { readLuksHeader } from '../../src/luks/header.js'
import { unlockAnyVolumeKey } from '../../src/luks/volume-key.js'
import { makeEncryptedImage, type TestImage } from '../helpers/images.js'

const exec = promisify(execFile)
const env = { ...process.env, PATH: `${process.env.PATH}:/usr/sbin:/sbin` }
const cryptsetup = (args: string[]) => exec('cryptsetup', args, { env, maxBuffer: 1 << 24 })
const images: TestImage[] = []
let formatted: { image: string; keyFile: string; key: Buffer }
let n = 0

/** Known plaintext encrypted by cryptsetup: LUKS2 offline encryption with 512-byte sectors, then `cryptsetup convert --type luks1`. */
async function cryptsetupLuks1(o: { cipher: string; keySizeBits: number; hash: string }): Promise<TestImage> {
  const img = await makeEncryptedImage({ fsSizeMiB: 8, sectorSize: 512, ...o })
  images.push(img)
  await cryptsetup(['convert', '--type', 'luks1', '-q', img.image])
  return img
}

test.before(async () => {
  const base = await makeEncryptedImage({ fsSizeMiB: 8 })
  images.push(base)
  const image = path.join(base.dir, 'formatted-luks1.img')
  await writeFile(image, '')
  await truncate(image, 16 * 1024 * 1024)
  await cryptsetup(['luksFormat', '--type', 'luks1', '-q', '--pbkdf-force-iterations', '1000', '--hash', 'sha1', '--key-file', base.keyFile, image])
  formatted = { image, keyFile: base.keyFile, key: base.key }
})
test.after.always(async () => {
  for (const img of images) await img.cleanup()
})

async function openError(image: string, key: Buffer): Promise<{ code?: string; message: string }> {
  const src = await FileSource.open(image)
  try {
    await (await LuksVolume.open(src, key)).close()
  } catch (err) {
    await src.close()
    return err as { code?: string; message: string }
  }
  throw new Error(`${image} opened, but it should have been refused`)
}

async function sha256(read: (off: number, len: number) => Promise<Buffer>, length: number): Promise<string> {
  const hash = createHash('sha256')
  for (let off = 0; off < length; off += 1_000_003) hash.update(await read(off, Math.min(1_000_003, length - off)))
  return hash.digest('hex')
}

for (const o of [
  { cipher: 'aes-xts-plain64', keySizeBits: 512, hash: 'sha256' },
  { cipher: 'aes-cbc-essiv:sha256', keySizeBits: 256, hash: 'sha1' },
]) {
  test(`LUKS1 ${o.cipher} (${o.hash}) encrypted by cryptsetup: encfs decrypts the original ext4 byte for byte`, async (t) => {
    const img = await cryptsetupLuks1(o)
    const dump = (await cryptsetup(['luksDump', img.image])).stdout
    t.regex(dump, /^Version:\s+1$/m, 'cryptsetup made a LUKS1 image')
    const volume = await LuksVolume.open(await FileSource.open(img.image), img.key)
    try {
      t.is(volume.header.version, 1)
      t.is(volume.header.segment.encryption, o.cipher)
      const plainSize = (await stat(img.plain)).size
      t.is(
        await sha256((off, len) => volume.read(off, len), plainSize),
        createHash('sha256')
          .update(await readFile(img.plain))
          .digest('hex'),
      )
    } finally {
      await volume.close()
    }
    const wrong = Buffer.from(img.key)
    wrong[3] = wrong[3]! ^ 0x80
    const err = await openError(img.image, wrong)
    t.is(err.code, 'LUKS_WRONG_KEY')
  })
}

test("luksFormat --type luks1: encfs opens cryptsetup's volume key, and what encfs writes, cryptsetup decrypts", async (t) => {
  const image = path.join(path.dirname(formatted.image), `rw-${n++}.img`)
  await copyFile(formatted.image, image)
  const src = await FileSource.open(image)
  const header = await readLuksHeader(src)
  const { volumeKey } = await unlockAnyVolumeKey(src, header, formatted.key)
  await src.close()
  const dump = (await cryptsetup(['luksDump', '--dump-master-key', '--key-file', formatted.keyFile, '-q', image])).stdout
  const mk = /MK dump:\s*((?:[0-9a-f]{2}\s+)+)/.exec(dump)?.[1]?.replace(/\s+/g, '')
  t.is(volumeKey.toString('hex'), mk ?? 'no MK dump in luksDump', 'the volume key cryptsetup reports')
  volumeKey.fill(0)

  const plaintext = randomBytes(1024 * 1024 + 1234)
  const volume = await LuksVolume.open(await FileSource.open(image, { writable: true }), formatted.key)
  await volume.write(4096 + 7, plaintext)
  await volume.close()
  // Independent check: cryptsetup converts the header and decrypts the payload offline.
  await cryptsetup(['convert', '--type', 'luks2', '-q', image])
  const out = path.join(path.dirname(image), `rw-${n++}.hdr`)
  await cryptsetup(['reencrypt', '--decrypt', '--header', out, '--force-offline-reencrypt', '--key-file', formatted.keyFile, '-q', image])
  const fh = await open(image, 'r')
  const back = Buffer.alloc(plaintext.length)
  await fh.read(back, 0, back.length, 4096 + 7)
  await fh.close()
  t.true(back.equals(plaintext), 'cryptsetup decrypted exactly what encfs wrote')
})

/** Writes into the 592-byte header of a copy of the luksFormat image, as an attacker with the blob could. */
async function edited(edit: (h: Buffer) => void): Promise<string> {
  const image = path.join(path.dirname(formatted.image), `edit-${n++}.img`)
  await copyFile(formatted.image, image)
  const fh = await open(image, 'r+')
  const h = Buffer.alloc(592)
  await fh.read(h, 0, 592, 0)
  edit(h)
  await fh.write(h, 0, 592, 0)
  await fh.close()
  return image
}

const field = (h: Buffer, at: number, len: number, text: string) => {
  h.fill(0, at, at + len)
  h.write(text, at, 'latin1')
}
const slot = (i: number) => 208 + i * 48

async function headerError(image: string): Promise<{ code?: string; message: string }> {
  const src = await FileSource.open(image)
  try {
    await readLuksHeader(src)
  } catch (err) {
    return err as { code?: string; message: string }
  } finally {
    await src.close()
  }
  throw new Error('the header was accepted')
}

test('hostile LUKS1 headers are refused in every mode, before any key is tried', async (t) => {
  const cases: [string, (h: Buffer) => void, string, RegExp][] = [
    [
      'null cipher',
      (h) => {
        field(h, 8, 32, 'cipher_null')
        field(h, 40, 32, 'ecb')
      },
      'LUKS_CIPHER_UNSUPPORTED',
      /null cipher stores data in plaintext.*refused in every unlock mode/,
    ],
    ['ECB', (h) => field(h, 40, 32, 'ecb'), 'LUKS_CIPHER_UNSUPPORTED', /without an IV/],
    ['key bytes', (h) => h.writeUInt32BE(4096, 108), 'LUKS_HEADER_CORRUPT', /key-bytes 4096/],
    ['stripes', (h) => h.writeUInt32BE(1, slot(0) + 44), 'LUKS_HEADER_CORRUPT', /keyslot 0 has 1 AF stripes/],
    ['keyslot over the header', (h) => h.writeUInt32BE(0, slot(0) + 40), 'LUKS_HEADER_CORRUPT', /overlaps the header/],
    ['keyslot past the end', (h) => h.writeUInt32BE(0xfffffff0, slot(0) + 40), 'LUKS_HEADER_CORRUPT', /past the end/],
    [
      'overlapping keyslots',
      (h) => {
        h.copy(h, slot(1), slot(0), slot(0) + 48)
        h.writeUInt32BE(h.readUInt32BE(slot(0) + 40) + 8, slot(1) + 40)
      },
      'LUKS_HEADER_CORRUPT',
      /keyslots 0 and 1 overlap/,
    ],
    ['payload over the keyslots', (h) => h.writeUInt32BE(8, 104), 'LUKS_HEADER_CORRUPT', /payload at 4096 overlaps the header and keyslots/],
    ['payload past the end', (h) => h.writeUInt32BE(1 << 24, 104), 'LUKS_DATA_SIZE_MISMATCH', /beyond the end/],
    ['unknown keyslot state', (h) => h.writeUInt32BE(0x12345678, slot(2)), 'LUKS_HEADER_CORRUPT', /keyslot 2 has the unknown state/],
    ['zero iterations', (h) => h.writeUInt32BE(0, 164), 'LUKS_HEADER_CORRUPT', /0 iterations/],
    ['no active keyslot', (h) => h.writeUInt32BE(0xdead, slot(0)), 'LUKS_NO_USABLE_KEYSLOT', /no active keyslot/],
    ['unterminated field', (h) => h.fill(0x41, 72, 104), 'LUKS_HEADER_CORRUPT', /hash-spec is not NUL-terminated/],
  ]
  for (const [name, edit, code, message] of cases) {
    const err = await headerError(await edited(edit))
    t.is(err.code, code, name)
    t.regex(err.message, message, name)
  }
})

test('a sound LUKS1 cipher encfs cannot decrypt is refused by the userspace path only, naming --unlock kernel', async (t) => {
  const image = await edited((h) => field(h, 8, 32, 'serpent'))
  const src = await FileSource.open(image)
  const header = await readLuksHeader(src)
  await src.close()
  t.is(header.segment.encryption, 'serpent-xts-plain64')
  t.truthy(header.userspaceProblem, 'the header itself is accepted: cryptsetup may open it')
  const err = await openError(image, formatted.key)
  t.is(err.code, 'LUKS_USERSPACE_UNSUPPORTED')
  t.regex(err.message, /unsupported cipher "serpent-xts-plain64".*cryptsetup can: run remotefs with --unlock kernel/)
})
