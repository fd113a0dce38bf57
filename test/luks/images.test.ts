// The userspace reader against images made by real cryptsetup (docs/luks2.md#reference-images, R1–R11).
import test from 'ava'
import { createHash } from 'node:crypto'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { writeFile, stat } from 'node:fs/promises'
import path from 'node:path'
import { pino } from 'pino'
import { FileSource } from '../../src/storage/file-source.js'
import { LuksVolume } from '../../src/luks/volume.js'
import { readLuks2Header } from '../../src/luks/header.js'
import { makeEncryptedImage, type ImageOptions, type TestImage } from '../helpers/images.js'

const exec = promisify(execFile)
const images: TestImage[] = []
test.after.always(async () => {
  for (const img of images) await img.cleanup()
})

async function image(o: ImageOptions): Promise<TestImage> {
  const img = await makeEncryptedImage({ fsSizeMiB: 8, ...o })
  images.push(img)
  return img
}

async function sha256File(file: string, length: number): Promise<string> {
  const src = await FileSource.open(file)
  try {
    return createHash('sha256')
      .update(await src.read(0, length))
      .digest('hex')
  } finally {
    await src.close()
  }
}

async function sha256Volume(volume: LuksVolume, length: number): Promise<string> {
  const hash = createHash('sha256')
  // Odd chunk size: reads straddle data units, as FUSE reads of a loop device never would.
  for (let off = 0; off < length; off += 1_000_003) hash.update(await volume.read(off, Math.min(1_000_003, length - off)))
  return hash.digest('hex')
}

/** Opens the image in userspace and checks the decrypted payload against the plaintext ext4. */
async function expectDecrypts(t: import('ava').ExecutionContext, img: TestImage, key: Buffer = img.key) {
  const plainSize = (await stat(img.plain)).size
  const data = await FileSource.open(img.image)
  const header = img.header ? await FileSource.open(img.header) : undefined
  const volume = await LuksVolume.open(data, key, { header })
  try {
    const expected = img.header ? (await stat(img.image)).size : (await stat(img.image)).size - img.payloadOffset
    t.is(volume.size, expected, 'payload size = image size minus the data offset')
    t.is(await sha256Volume(volume, plainSize), await sha256File(img.plain, plainSize), 'decrypted payload equals the plaintext ext4')
    return volume
  } finally {
    await volume.close()
  }
}

test('R1: aes-xts-plain64, 512-bit key, 4096-byte sectors, pbkdf2', async (t) => {
  const img = await image({ sectorSize: 4096 })
  const src = await FileSource.open(img.image)
  const header = await readLuks2Header(src)
  await src.close()
  t.is(header.segment.sectorSize, 4096)
  t.is(header.segment.encryption, 'aes-xts-plain64')
  t.is(header.segment.keySize, 64)
  t.is(header.segment.offset, img.payloadOffset)
  t.is(header.copy, 'primary')
  const volume = await expectDecrypts(t, img)
  t.is(volume.keyslot, '0')
})

test('R2: 512-byte sectors', async (t) => {
  await expectDecrypts(t, await image({ sectorSize: 512 }))
})

test('R7: 2048-byte sectors', async (t) => {
  await expectDecrypts(t, await image({ sectorSize: 2048 }))
})

test('R3: argon2id keyslot (t=4, 32 MiB, 2 lanes)', async (t) => {
  const img = await image({ pbkdf: 'argon2id' })
  await expectDecrypts(t, img)
})

test('R4: argon2i keyslot', async (t) => {
  await expectDecrypts(t, await image({ pbkdf: 'argon2i' }))
})

test('R6: AES-128-XTS (32-byte volume key) with sha512 for KDF, AF and digest', async (t) => {
  const img = await image({ keySizeBits: 256, hash: 'sha512' })
  const src = await FileSource.open(img.image)
  const header = await readLuks2Header(src)
  await src.close()
  t.is(header.segment.keySize, 32)
  t.is(header.digests[0]!.digest.length, 64)
  await expectDecrypts(t, img)
})

test('R9: detached header', async (t) => {
  const img = await image({ detached: true })
  t.is((await stat(img.image)).size, (await stat(img.plain)).size, 'data file keeps its size')
  await expectDecrypts(t, img)
  // Without the header the data file is not LUKS at all.
  const data = await FileSource.open(img.image)
  const err = await t.throwsAsync(LuksVolume.open(data, img.key))
  t.is((err as { code?: string }).code, 'LUKS_NOT_LUKS')
  await data.close()
})

test('R10: aes-cbc-essiv:sha256', async (t) => {
  await expectDecrypts(t, await image({ cipher: 'aes-cbc-essiv:sha256', keySizeBits: 256 }))
})

test('R11: aes-xts-plain (32-bit IV)', async (t) => {
  await expectDecrypts(t, await image({ cipher: 'aes-xts-plain' }))
})

test('R8: 64k metadata, label, a second keyslot with priority prefer, and a token', async (t) => {
  const img = await image({ extraArgs: ['--luks2-metadata-size', '64k', '--label', 'mylabel', '--subsystem', 'mysub'] })
  const pass2 = Buffer.from('second passphrase\nwith a newline')
  const pass2File = path.join(img.dir, 'pass2.bin')
  await writeFile(pass2File, pass2)
  const env = { ...process.env, PATH: `${process.env.PATH}:/usr/sbin:/sbin` }
  await exec('cryptsetup', ['luksAddKey', '-q', '--key-file', img.keyFile, '--pbkdf', 'pbkdf2', '--pbkdf-force-iterations', '1000', img.image, pass2File], { env })
  await exec('cryptsetup', ['config', '--priority', 'prefer', '--key-slot', '1', img.image], { env })
  await exec('cryptsetup', ['token', 'add', '--key-description', 'mykey', '--key-slot', '1', img.image], { env })
  const src = await FileSource.open(img.image)
  const header = await readLuks2Header(src)
  await src.close()
  t.is(header.hdrSize, 65536)
  t.is(header.label, 'mylabel')
  t.is(header.subsystem, 'mysub')
  t.deepEqual(
    header.keyslots.map((k) => [k.id, k.priority]),
    [
      ['0', 1],
      ['1', 2],
    ],
  )
  t.is((await expectDecrypts(t, img)).keyslot, '0')
  t.is((await expectDecrypts(t, img, pass2)).keyslot, '1', 'the preferred slot opens with its own passphrase')
  // The order is observable in what is tried: the preferred slot 1 first, even for slot 0's key.
  const tried: string[] = []
  const logger = pino(
    { level: 'info' },
    {
      write: (line: string) => {
        const m = /"msg":"trying keyslot (\d+)/.exec(line)
        if (m) tried.push(m[1]!)
      },
    },
  )
  const volume = await LuksVolume.open(await FileSource.open(img.image), img.key, { logger })
  await volume.close()
  t.deepEqual(tried, ['1', '0'], 'keyslot 1 (priority prefer) is tried before keyslot 0')
})
