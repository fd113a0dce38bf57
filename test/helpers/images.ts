import { mkdtemp, mkdir, writeFile, readFile, rm, truncate, copyFile } from 'node:fs/promises'
import { createDecipheriv, randomBytes } from 'node:crypto'
import os from 'node:os'
import path from 'node:path'
import { runCommand } from '../../src/process/run.js'

export interface TestImage {
  /** Directory holding everything below. */
  dir: string
  /** The LUKS2 image (attached header), or the data file (detached). */
  image: string
  /** Detached header file, when detached. */
  header?: string
  /** The plaintext ext4 image it was made from. */
  plain: string
  /** The key file bytes: the LUKS passphrase. */
  key: Buffer
  keyFile: string
  payloadOffset: number
  /** What is inside the ext4 (relative path -> content). */
  files: Record<string, string | Buffer>
  cleanup(): Promise<void>
}

export interface ImageOptions {
  files?: Record<string, string | Buffer>
  /** ext4 size, default 8. */
  fsSizeMiB?: number
  /** Default 4096. */
  sectorSize?: 512 | 1024 | 2048 | 4096
  /** Default pbkdf2 with 1000 iterations; argon2 with cheap parameters. */
  pbkdf?: 'pbkdf2' | 'argon2id' | 'argon2i'
  /** Argon2 memory in KiB (default 32768 for argon2id, 16384 for argon2i). */
  argon2MemoryKiB?: number
  cipher?: string
  keySizeBits?: number
  hash?: string
  detached?: boolean
  /** Default: 32 random bytes that include a 0x0a byte (cryptsetup's newline trap). */
  key?: Buffer
  extraArgs?: string[]
  /** Where to build (created); default a new temp dir. */
  dir?: string
}

const DEFAULT_FILES: Record<string, string> = {
  'hello.txt': 'hello, encrypted world\n',
  'docs/readme.md': '# encfs test image\n',
  'docs/deeper/numbers.txt': '1 2 3 5 8 13 21\n',
}

/** Header reduction for attached images; the data segment starts at half of it (4 MiB). */
const REDUCE = '8M'

export function randomKey(): Buffer {
  const key = randomBytes(32)
  key[7] = 0x0a
  return key
}

/**
 * An ext4 filesystem holding `files`, encrypted in place by real cryptsetup (offline
 * `reencrypt --encrypt`, which needs no device-mapper), as docs/luks2.md#test-images describes.
 */
export async function makeEncryptedImage(o: ImageOptions = {}): Promise<TestImage> {
  const dir = o.dir ?? (await mkdtemp(path.join(os.tmpdir(), 'encfs-img-')))
  await mkdir(dir, { recursive: true })
  const cleanup = () => rm(dir, { recursive: true, force: true })
  try {
    const files = o.files ?? DEFAULT_FILES
    const src = path.join(dir, 'src')
    for (const [rel, content] of Object.entries(files)) {
      await mkdir(path.dirname(path.join(src, rel)), { recursive: true })
      await writeFile(path.join(src, rel), content)
    }
    await mkdir(src, { recursive: true })
    const plain = path.join(dir, 'plain.img')
    const fsBytes = (o.fsSizeMiB ?? 8) * 1024 * 1024
    await writeFile(plain, '')
    await truncate(plain, fsBytes)
    await runCommand('mkfs.ext4', ['-q', '-F', '-b', '4096', '-d', src, plain])
    const key = o.key ?? randomKey()
    const keyFile = path.join(dir, 'key.bin')
    await writeFile(keyFile, key, { mode: 0o600 })
    const image = path.join(dir, o.detached ? 'data.img' : 'image.img')
    await copyFile(plain, image)
    const header = o.detached ? path.join(dir, 'header.img') : undefined
    if (!o.detached) await truncate(image, fsBytes + 8 * 1024 * 1024)
    const pbkdf = o.pbkdf ?? 'pbkdf2'
    const kdfArgs =
      pbkdf === 'pbkdf2'
        ? ['--pbkdf', 'pbkdf2', '--pbkdf-force-iterations', '1000']
        : [
            '--pbkdf',
            pbkdf,
            '--pbkdf-memory',
            String(o.argon2MemoryKiB ?? (pbkdf === 'argon2id' ? 32768 : 16384)),
            '--pbkdf-parallel',
            pbkdf === 'argon2id' ? '2' : '1',
            '--pbkdf-force-iterations',
            '4',
          ]
    await runCommand('cryptsetup', [
      'reencrypt',
      '--encrypt',
      '--type',
      'luks2',
      ...(header ? ['--header', header] : ['--reduce-device-size', REDUCE]),
      '--cipher',
      o.cipher ?? 'aes-xts-plain64',
      '--key-size',
      String(o.keySizeBits ?? 512),
      '--sector-size',
      String(o.sectorSize ?? 4096),
      ...(o.hash ? ['--hash', o.hash] : []),
      ...kdfArgs,
      ...(o.extraArgs ?? []),
      '--key-file',
      keyFile,
      '-q',
      image,
    ])
    await rm(src, { recursive: true, force: true })
    const payloadOffset = header ? 0 : 4 * 1024 * 1024
    return { dir, image, ...(header ? { header } : {}), plain, key, keyFile, payloadOffset, files, cleanup }
  } catch (err) {
    await cleanup()
    throw err
  }
}

/**
 * The plaintext of a LUKS2 image (aes-xts-plain64) as cryptsetup opens it, where there is no
 * device-mapper to map it: cryptsetup reads the header, opens a keyslot with the key and hands out
 * the volume key (`luksDump --dump-volume-key`), and node:crypto decrypts the data segment
 * (plain64: the IV counts 512-byte sectors), so nothing of encfs's own LUKS code is involved.
 */
export async function decryptWithCryptsetup(image: string, keyFile: string): Promise<Buffer> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'encfs-cryptsetup-'))
  try {
    const vk = path.join(dir, 'volume-key')
    await runCommand('cryptsetup', ['luksDump', '--dump-volume-key', '--volume-key-file', vk, '--key-file', keyFile, '--batch-mode', image])
    const meta = JSON.parse((await runCommand('cryptsetup', ['luksDump', '--dump-json-metadata', image])).stdout) as {
      segments: Record<string, { offset: string; encryption: string; sector_size: number }>
    }
    const segment = meta.segments['0']
    if (segment?.encryption !== 'aes-xts-plain64') throw new Error(`decryptWithCryptsetup: segment 0 is ${JSON.stringify(segment)}, not aes-xts-plain64`)
    const key = await readFile(vk)
    const data = (await readFile(image)).subarray(Number(segment.offset))
    const plain = Buffer.alloc(data.length - (data.length % segment.sector_size))
    const iv = Buffer.alloc(16)
    for (let off = 0; off < plain.length; off += segment.sector_size) {
      iv.fill(0).writeBigUInt64LE(BigInt(off / 512))
      const d = createDecipheriv(`aes-${key.length * 4}-xts`, key, iv).setAutoPadding(false)
      d.update(data.subarray(off, off + segment.sector_size)).copy(plain, off)
      d.final()
    }
    key.fill(0)
    return plain
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}
