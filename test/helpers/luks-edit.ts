import { createHash } from 'node:crypto'
import { open } from 'node:fs/promises'
import { FileSource } from '../../src/storage/file-source.js'
import { LuksVolume } from '../../src/luks/volume.js'

/**
 * Rewrites one LUKS2 header copy of an image file the way an attacker with write access to the
 * blob could: new JSON and/or label and seqid, with a valid checksum. Never run cryptsetup on a
 * fixture between edits: it repairs headers.
 */
export async function editHeader(
  file: string,
  copy: 'primary' | 'secondary',
  edit: { json?: (meta: Record<string, any>) => void; label?: string; seqidDelta?: number; recomputeChecksum?: boolean },
): Promise<void> {
  const fh = await open(file, 'r+')
  try {
    const first = Buffer.alloc(4096)
    await fh.read(first, 0, 4096, 0)
    const hdrSize = Number(first.readBigUInt64BE(8))
    const offset = copy === 'primary' ? 0 : hdrSize
    const area = Buffer.alloc(hdrSize)
    await fh.read(area, 0, hdrSize, offset)
    if (edit.json) {
      const nul = area.indexOf(0, 4096)
      const meta = JSON.parse(area.subarray(4096, nul).toString('utf8')) as Record<string, any>
      edit.json(meta)
      const text = Buffer.from(JSON.stringify(meta))
      area.fill(0, 4096)
      text.copy(area, 4096)
    }
    if (edit.label !== undefined) {
      area.fill(0, 24, 72)
      area.write(edit.label, 24, 'latin1')
    }
    if (edit.seqidDelta) area.writeBigUInt64BE(area.readBigUInt64BE(16) + BigInt(edit.seqidDelta), 16)
    if (edit.recomputeChecksum !== false) {
      area.fill(0, 448, 512)
      createHash('sha256').update(area).digest().copy(area, 448)
    }
    await fh.write(area, 0, hdrSize, offset)
  } finally {
    await fh.close()
  }
}

/** Flips one byte of the JSON area of a copy without fixing the checksum (simulated bit rot). */
export async function corruptJson(file: string, copy: 'primary' | 'secondary'): Promise<void> {
  const fh = await open(file, 'r+')
  try {
    const first = Buffer.alloc(4096)
    await fh.read(first, 0, 4096, 0)
    const at = (copy === 'primary' ? 0 : Number(first.readBigUInt64BE(8))) + 4096 + 10
    const b = Buffer.alloc(1)
    await fh.read(b, 0, 1, at)
    b[0] = b[0]! ^ 0x01
    await fh.write(b, 0, 1, at)
  } finally {
    await fh.close()
  }
}

/** Opens an image file in userspace and returns the error it is refused with; fails when it opens. */
export async function openRefusal(file: string, key: Buffer, opts: Parameters<typeof LuksVolume.open>[2] = {}): Promise<unknown> {
  const src = await FileSource.open(file)
  try {
    const volume = await LuksVolume.open(src, key, opts)
    await volume.close()
  } catch (err) {
    await src.close()
    return err
  }
  throw new Error(`${file} opened, but it should have been refused`)
}
