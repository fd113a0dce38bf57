import { open, mkdtemp, rm, stat, readdir, lstat, truncate, writeFile, rename } from 'node:fs/promises'
import { randomBytes } from 'node:crypto'
import os from 'node:os'
import path from 'node:path'
import { silentLogger, type Logger } from '../log/logger.js'
import { EncfsError } from '../errors/encfs-error.js'
import { runCommand } from '../process/run.js'
import { formatLuks2, DATA_OFFSET, type FormatOptions } from '../luks/format.js'
import { SectorCipher } from '../luks/sector-cipher.js'

const MiB = 1024 * 1024

async function treeBytes(dir: string): Promise<{ bytes: number; entries: number }> {
  let bytes = 0
  let entries = 0
  for (const name of await readdir(dir)) {
    const p = path.join(dir, name)
    const st = await lstat(p)
    entries++
    if (st.isDirectory()) {
      const sub = await treeBytes(p)
      bytes += sub.bytes
      entries += sub.entries
    } else bytes += Math.ceil(st.size / 4096) * 4096
  }
  return { bytes, entries }
}

/** Room for the files, their metadata, the journal and reserved blocks, in whole MiB. */
export async function autoSize(dir: string): Promise<number> {
  const { bytes, entries } = await treeBytes(dir)
  const withOverhead = bytes * 1.15 + entries * 8192 + 16 * MiB
  return Math.max(16, Math.ceil(withOverhead / MiB)) * MiB
}

export interface PackOptions extends Omit<FormatOptions, 'passphrase'> {
  from: string
  out: string
  key: Buffer
  /** Filesystem size in bytes; default computed from the directory. */
  size?: number
  logger?: Logger
}

/**
 * A directory packed into an encrypted image: mkfs.ext4 -d, then encfs's own LUKS2 writer
 * (no device-mapper, no cryptsetup needed). Layout: 16 MiB header, then the encrypted ext4.
 */
export async function pack(o: PackOptions): Promise<{ bytes: number; fsBytes: number }> {
  const logger = o.logger ?? silentLogger
  const st = await stat(o.from).catch(() => undefined)
  if (!st?.isDirectory()) throw new EncfsError('PACK_SOURCE', `--from ${o.from} is not a directory`)
  const fsBytes = o.size ?? (await autoSize(o.from))
  if (fsBytes % 4096 !== 0) throw new EncfsError('PACK_SIZE', `--size must be a multiple of 4096 bytes, got ${fsBytes}`)
  const tmp = await mkdtemp(path.join(os.tmpdir(), 'encfs-pack-'))
  const plain = path.join(tmp, 'plain.ext4')
  // The image is written next to --out and renamed over it only when complete: a failure never
  // destroys a file that was there before, nor leaves a half-written image under its name.
  const partial = `${o.out}.${randomBytes(4).toString('hex')}.partial`
  try {
    await writeFile(plain, '')
    await truncate(plain, fsBytes)
    logger.info({ from: o.from, fsMiB: fsBytes / MiB }, 'making ext4 from the directory')
    await runCommand('mkfs.ext4', ['-q', '-F', '-b', '4096', '-L', 'encfs', '-d', o.from, plain]).catch((err: Error & { result?: { stderr: string } }) => {
      const full = /allocate|space/i.test(err.result?.stderr ?? '')
      throw new EncfsError('PACK_MKFS_FAILED', `making the ext4 failed: ${err.message}${full ? ' (give a larger --size)' : ''}`, { cause: err })
    })
    logger.info({ pbkdf: o.pbkdf ?? 'pbkdf2' }, 'writing the LUKS2 header and keyslot')
    const { header, volumeKey, sectorSize } = await formatLuks2({ ...o, passphrase: o.key })
    const cipher = new SectorCipher('aes-xts-plain64', volumeKey)
    volumeKey.fill(0)
    const src = await open(plain, 'r')
    const dst = await open(partial, 'wx', 0o644)
    try {
      await dst.write(header, 0, header.length, 0)
      const chunk = Buffer.alloc(4 * MiB)
      for (let off = 0; off < fsBytes; off += chunk.length) {
        const n = Math.min(chunk.length, fsBytes - off)
        await src.read(chunk, 0, n, off)
        const enc = cipher.encrypt(chunk.subarray(0, n), off / 512, sectorSize)
        await dst.write(enc, 0, n, DATA_OFFSET + off)
      }
      await dst.sync()
    } finally {
      cipher.destroy()
      await src.close()
      await dst.close()
    }
    await rename(partial, o.out)
    const bytes = DATA_OFFSET + fsBytes
    logger.info({ out: o.out, bytes }, 'encrypted image written')
    return { bytes, fsBytes }
  } catch (err) {
    await rm(partial, { force: true })
    throw err
  } finally {
    await rm(tmp, { recursive: true, force: true })
  }
}
