// Images the reader must refuse, or open with a warning (docs/luks2.md#refusals and #reference-images, N1–N8),
// and headers an attacker controlling the blob could write (CVE-2025-59054 and relatives).
import test from 'ava'
import { copyFile, truncate, writeFile, stat } from 'node:fs/promises'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import path from 'node:path'
import { pino } from 'pino'
import { FileSource } from '../../src/storage/file-source.js'
import { LuksVolume } from '../../src/luks/volume.js'
import { readLuks2Header } from '../../src/luks/header.js'
import { makeEncryptedImage, type TestImage } from '../helpers/images.js'
import { editHeader, corruptJson, openRefusal } from '../helpers/luks-edit.js'

const exec = promisify(execFile)
const env = { ...process.env, PATH: `${process.env.PATH}:/usr/sbin:/sbin` }
let base: TestImage
let argon: TestImage
let n = 0

test.before(async () => {
  base = await makeEncryptedImage({ fsSizeMiB: 8 })
  argon = await makeEncryptedImage({ fsSizeMiB: 8, pbkdf: 'argon2id' })
})
test.after.always(async () => {
  await base?.cleanup()
  await argon?.cleanup()
})

/** A private copy of the base image to damage. */
async function copy(of: TestImage = base): Promise<string> {
  const file = path.join(of.dir, `copy-${n++}.img`)
  await copyFile(of.image, file)
  return file
}

async function openError(file: string, key = base.key, opts: Parameters<typeof LuksVolume.open>[2] = {}): Promise<{ code?: string; message: string }> {
  return (await openRefusal(file, key, opts)) as { code?: string; message: string }
}

function captureLogger() {
  const lines: string[] = []
  const logger = pino(
    { level: 'debug' },
    {
      write: (s: string) => {
        lines.push(s)
      },
    },
  )
  return { logger, text: () => lines.join('') }
}

test('N1: a wrong key opens no keyslot, and the message does not say which slot came close', async (t) => {
  const wrong = Buffer.from(base.key)
  wrong[0] = wrong[0]! ^ 1
  const err = await openError(base.image, wrong)
  t.is(err.code, 'LUKS_WRONG_KEY')
  t.regex(err.message, /no keyslot can be opened with this key/)
  t.notRegex(err.message, /slot 0/)
})

test('N2: an interrupted reencryption (mandatory requirement) is refused with the way out', async (t) => {
  // The N2 image (docs/luks2.md#reference-images): reencryption initialised but never run.
  const fresh = path.join(base.dir, `n2-${n++}.img`)
  await copyFile(base.plain, fresh)
  await truncate(fresh, (await stat(base.plain)).size + 8 * 1024 * 1024)
  await exec(
    'cryptsetup',
    [
      'reencrypt',
      '--encrypt',
      '--init-only',
      '--type',
      'luks2',
      '--reduce-device-size',
      '8M',
      '--pbkdf',
      'pbkdf2',
      '--pbkdf-force-iterations',
      '1000',
      '--key-file',
      base.keyFile,
      '-q',
      fresh,
    ],
    { env },
  )
  const err = await openError(fresh)
  t.is(err.code, 'LUKS_REQUIREMENTS')
  t.regex(err.message, /online-reencrypt/)
  t.regex(err.message, /cryptsetup reencrypt --resume-only/)
})

test('N3: a corrupt primary falls back to the secondary copy, with a warning', async (t) => {
  const img = await copy()
  await corruptJson(img, 'primary')
  const { logger, text } = captureLogger()
  const src = await FileSource.open(img)
  const header = await readLuks2Header(src, { logger })
  t.is(header.copy, 'secondary')
  t.regex(text(), /only the secondary copy is valid/)
  t.regex(text(), /checksum mismatch/)
  const volume = await LuksVolume.open(src, base.key)
  t.is(volume.keyslot, '0')
  await volume.close()
})

test('N4: the copy with the higher seqid wins', async (t) => {
  const img = await copy()
  await editHeader(img, 'secondary', { label: 'newer', seqidDelta: 1 })
  const src = await FileSource.open(img)
  const header = await readLuks2Header(src)
  await src.close()
  t.is(header.copy, 'secondary')
  t.is(header.label, 'newer')
})

test('N5: both copies corrupt: "header corrupted" naming each copy\'s reason', async (t) => {
  const img = await copy()
  await corruptJson(img, 'primary')
  await corruptJson(img, 'secondary')
  const err = await openError(img)
  t.is(err.code, 'LUKS_HEADER_CORRUPT')
  t.regex(err.message, /primary: checksum mismatch; secondary: checksum mismatch/)
})

test('N6: a truncated image (payload not whole sectors) is refused as a size mismatch', async (t) => {
  const img = await copy()
  await truncate(img, (await stat(img)).size - 512)
  const err = await openError(img)
  t.is(err.code, 'LUKS_DATA_SIZE_MISMATCH')
  t.regex(err.message, /not a multiple of the 4096-byte sector size/)
})

test('N8: zeros and a plain ext4 image are "not a LUKS device"; a tiny file says it is too small', async (t) => {
  const zeros = path.join(base.dir, 'zeros.img')
  await writeFile(zeros, Buffer.alloc(8 * 1024 * 1024))
  t.is((await openError(zeros)).code, 'LUKS_NOT_LUKS')
  t.is((await openError(base.plain)).code, 'LUKS_NOT_LUKS')
  const tiny = path.join(base.dir, 'tiny.img')
  await writeFile(tiny, Buffer.alloc(100))
  t.is((await openError(tiny)).code, 'LUKS_TOO_SMALL')
})

test('a null cipher in a re-checksummed header is refused before any key is tried', async (t) => {
  const img = await copy()
  for (const c of ['primary', 'secondary'] as const) {
    await editHeader(img, c, {
      json: (m) => {
        m.segments['0'].encryption = 'cipher_null-ecb'
      },
    })
  }
  const err = await openError(img)
  t.is(err.code, 'LUKS_CIPHER_UNSUPPORTED')
  t.regex(err.message, /null cipher stores data in plaintext/)
})

test('integrity, extra segments, and a segment over the header are each refused', async (t) => {
  const cases: [(m: Record<string, any>) => void, string][] = [
    [
      (m) => {
        m.segments['0'].integrity = { type: 'hmac(sha256)', journal_encryption: 'none', journal_integrity: 'none' }
      },
      'LUKS_INTEGRITY_UNSUPPORTED',
    ],
    // A crypt segment must be covered by a digest (or the copy is invalid, as cryptsetup has it).
    [
      (m) => {
        m.segments['1'] = { ...m.segments['0'], offset: '8388608' }
        m.digests['0'].segments.push('1')
      },
      'LUKS_SEGMENT_UNSUPPORTED',
    ],
    // Over the keyslots area: cryptsetup's config check makes such a copy invalid.
    [
      (m) => {
        m.segments['0'].offset = '16384'
      },
      'LUKS_HEADER_CORRUPT',
    ],
    // At 0 with the header attached (0 would mean a detached header): refused by encfs's policy.
    [
      (m) => {
        m.segments['0'].offset = '0'
      },
      'LUKS_SEGMENT_UNSUPPORTED',
    ],
    [
      (m) => {
        m.segments['0'].type = 'linear'
      },
      'LUKS_SEGMENT_UNSUPPORTED',
    ],
    [
      (m) => {
        m.segments['0'].sector_size = 8192
      },
      'LUKS_SECTOR_SIZE_UNSUPPORTED',
    ],
  ]
  for (const [edit, code] of cases) {
    const img = await copy()
    for (const c of ['primary', 'secondary'] as const) await editHeader(img, c, { json: edit })
    t.is((await openError(img)).code, code, String(edit))
  }
})

test('a keyslot with an unknown KDF is skipped; with no other slot the error says none is usable', async (t) => {
  const img = await copy()
  for (const c of ['primary', 'secondary'] as const)
    await editHeader(img, c, {
      json: (m) => {
        m.keyslots['0'].kdf.type = 'scrypt'
      },
    })
  const err = await openError(img)
  t.is(err.code, 'LUKS_NO_USABLE_KEYSLOT')
  t.regex(err.message, /keyslot 0: unsupported kdf scrypt/)
})

test('Argon2 memory above the limit is refused with the numbers, and opens under a higher limit', async (t) => {
  const err = await openError(argon.image, argon.key, { maxArgon2MemoryKiB: 16 * 1024 })
  t.is(err.code, 'LUKS_KDF_MEMORY')
  t.regex(err.message, /needs 32 MiB for Argon2; the limit is 16 MiB/)
  const volume = await LuksVolume.open(await FileSource.open(argon.image), argon.key, { maxArgon2MemoryKiB: 64 * 1024 })
  t.is(volume.keyslot, '0')
  await volume.close()
})

test('the key never appears in what is logged while unlocking', async (t) => {
  const { logger, text } = captureLogger()
  const volume = await LuksVolume.open(await FileSource.open(base.image), base.key, { logger })
  await volume.close()
  t.regex(text(), /keyslot 0 opened/)
  t.false(text().includes(base.key.toString('hex')))
  t.false(text().includes(base.key.toString('base64')))
})
