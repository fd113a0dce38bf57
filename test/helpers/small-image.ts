import { randomBytes } from 'node:crypto'
import { open } from 'node:fs/promises'
import path from 'node:path'
import { formatLuks2, DATA_OFFSET, type FormatOptions } from '../../src/luks/format.js'
import { SectorCipher } from '../../src/luks/sector-cipher.js'

export interface SmallImage {
  file: string
  key: Buffer
  /** The plaintext of the payload (random), to check what a volume decrypts. */
  plaintext: Buffer
}

/**
 * A LUKS2 image made by encfs's own writer in a few milliseconds (no cryptsetup, no mkfs): a
 * 16 MiB header area and a small random payload. Hostile-header tests edit its JSON with
 * test/helpers/luks-edit.ts.
 */
export async function makeSmallImage(dir: string, o: Omit<FormatOptions, 'passphrase'> & { payloadBytes?: number; name?: string } = {}): Promise<SmallImage> {
  const key = randomBytes(32)
  const { header, volumeKey, sectorSize } = await formatLuks2({ iterations: 1000, ...o, passphrase: key })
  const plaintext = randomBytes(o.payloadBytes ?? 64 * 1024)
  const cipher = new SectorCipher('aes-xts-plain64', volumeKey)
  const payload = cipher.encrypt(Buffer.from(plaintext), 0, sectorSize)
  cipher.destroy()
  volumeKey.fill(0)
  const file = path.join(dir, o.name ?? `small-${randomBytes(4).toString('hex')}.img`)
  const fh = await open(file, 'w')
  try {
    await fh.write(header, 0, header.length, 0)
    await fh.write(payload, 0, payload.length, DATA_OFFSET)
  } finally {
    await fh.close()
  }
  return { file, key, plaintext }
}

/**
 * Adds keyslot `newId` as a copy of keyslot `fromId` (same KDF and key material, its area copied
 * right after the last one) to both header copies, bound to the same digest.
 */
export async function cloneKeyslot(file: string, fromId: string, newId: string, edit?: (slot: Record<string, any>) => void): Promise<void> {
  const { editHeader } = await import('./luks-edit.js')
  const fh = await open(file, 'r+')
  let from: { offset: number; size: number } | undefined
  let to = 0
  try {
    const first = Buffer.alloc(4096)
    await fh.read(first, 0, 4096, 0)
    const hdrSize = Number(first.readBigUInt64BE(8))
    const json = Buffer.alloc(hdrSize - 4096)
    await fh.read(json, 0, json.length, 4096)
    const meta = JSON.parse(json.subarray(0, json.indexOf(0)).toString('utf8')) as { keyslots: Record<string, { area: { offset: string; size: string } }> }
    const area = meta.keyslots[fromId]!.area
    from = { offset: Number(area.offset), size: Number(area.size) }
    to = Math.max(...Object.values(meta.keyslots).map((k) => Number(k.area.offset) + Number(k.area.size)))
    const bytes = Buffer.alloc(from.size)
    await fh.read(bytes, 0, from.size, from.offset)
    await fh.write(bytes, 0, from.size, to)
  } finally {
    await fh.close()
  }
  for (const copy of ['primary', 'secondary'] as const) {
    await editHeader(file, copy, {
      json: (m) => {
        const slot = JSON.parse(JSON.stringify(m.keyslots[fromId])) as Record<string, any>
        slot.area.offset = String(to)
        edit?.(slot)
        m.keyslots[newId] = slot
        for (const d of Object.values(m.digests) as { keyslots: string[] }[]) if (d.keyslots.includes(fromId)) d.keyslots.push(newId)
      },
    })
  }
}
