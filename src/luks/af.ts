import { createHash } from 'node:crypto'

const DIGEST_SIZES: Record<string, number> = { sha1: 20, sha256: 32, sha512: 64 }

function digestSize(hash: string): number {
  return DIGEST_SIZES[hash] ?? createHash(hash).digest().length
}

/** One diffusion round: each `d`-byte chunk j becomes H(BE32(j) || chunk), truncated (docs/luks2.md#anti-forensic-splitter). */
function diffuse(block: Buffer, hash: string): void {
  const d = digestSize(hash)
  const counter = Buffer.alloc(4)
  for (let j = 0, off = 0; off < block.length; j++, off += d) {
    const chunk = block.subarray(off, Math.min(off + d, block.length))
    counter.writeUInt32BE(j, 0)
    const h = createHash(hash).update(counter).update(chunk).digest()
    h.copy(chunk, 0, 0, chunk.length)
    h.fill(0)
  }
}

function xorInto(target: Buffer, other: Buffer): void {
  for (let i = 0; i < target.length; i++) target[i]! ^= other[i]!
}

/** Recovers the `keySize`-byte key from `stripes` AF stripes (the decrypted keyslot area). */
export function afMerge(material: Buffer, keySize: number, stripes: number, hash: string): Buffer {
  if (material.length < keySize * stripes) throw new RangeError(`AF material has ${material.length} bytes, needs ${keySize * stripes}`)
  const d = Buffer.alloc(keySize)
  for (let i = 0; i < stripes - 1; i++) {
    xorInto(d, material.subarray(i * keySize, (i + 1) * keySize))
    diffuse(d, hash)
  }
  xorInto(d, material.subarray((stripes - 1) * keySize, stripes * keySize))
  return d
}

/** Splits `key` into `stripes` stripes with random filler, padded with zeros to a 512-byte multiple. */
export function afSplit(key: Buffer, stripes: number, hash: string, random: (n: number) => Buffer): Buffer {
  const n = key.length
  const out = Buffer.alloc(Math.ceil((n * stripes) / 512) * 512)
  const d = Buffer.alloc(n)
  for (let i = 0; i < stripes - 1; i++) {
    const s = random(n)
    s.copy(out, i * n)
    xorInto(d, s)
    diffuse(d, hash)
  }
  xorInto(d, key)
  d.copy(out, (stripes - 1) * n)
  d.fill(0)
  return out
}
