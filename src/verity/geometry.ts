import { BLOCK_SIZE, DIGEST_SIZE } from './superblock.js'

/** Hashes per 4 KiB hash block: 128 sha256 digests. */
export const FANOUT = BLOCK_SIZE / DIGEST_SIZE

/**
 * Where each level of a dm-verity tree lives (docs/dm-verity.md). Level 0 holds the hashes of the
 * data blocks, level i+1 the hashes of level i's blocks, up to a top level of one block whose
 * salted hash is the root hash. The top level is stored first, level 0 last; an image of one data
 * block has no levels at all (its root hash is the data block's own hash).
 */
export class TreeGeometry {
  readonly dataBlocks: number
  /** Blocks in each level, index 0 = the hashes of the data blocks. */
  readonly levelBlocks: number[] = []
  /** First block of each level, counted from the start of the tree (the block after the superblock). */
  readonly levelStart: number[] = []
  readonly treeBlocks: number

  constructor(dataBlocks: number) {
    if (!Number.isSafeInteger(dataBlocks) || dataBlocks < 1) throw new RangeError(`data blocks must be a positive whole number, got ${dataBlocks}`)
    this.dataBlocks = dataBlocks
    // Levels until one block covers everything below it, as the kernel counts them.
    for (let below = dataBlocks; below > 1; ) {
      below = Math.ceil(below / FANOUT)
      this.levelBlocks.push(below)
    }
    let pos = 0
    for (let i = this.levelBlocks.length - 1; i >= 0; i--) {
      this.levelStart[i] = pos
      pos += this.levelBlocks[i]!
    }
    this.treeBlocks = pos
  }

  get levels(): number {
    return this.levelBlocks.length
  }

  /** Entries in level `level`'s blocks: data blocks for level 0, else blocks of the level below. */
  entriesOf(level: number): number {
    return level === 0 ? this.dataBlocks : this.levelBlocks[level - 1]!
  }

  /** Bytes of a hash area: the superblock's block, then the tree. */
  get hashAreaBytes(): number {
    return (1 + this.treeBlocks) * BLOCK_SIZE
  }

  get dataBytes(): number {
    return this.dataBlocks * BLOCK_SIZE
  }

  /** Byte offset, within the hash area, of block `index` of `level`. */
  blockOffset(level: number, index: number): number {
    return (1 + this.levelStart[level]! + index) * BLOCK_SIZE
  }
}

/**
 * The data-block count whose appended hash area makes an image exactly `totalBytes` long
 * (encfs pack --verity, or veritysetup format with --hash-offset at the end of the data), if any.
 */
export function appendedDataBlocks(totalBytes: number): number | undefined {
  if (totalBytes % BLOCK_SIZE !== 0) return undefined
  const total = totalBytes / BLOCK_SIZE
  // total = n + 1 + tree(n), increasing in n: binary search.
  let lo = 1
  let hi = total
  while (lo <= hi) {
    const n = Math.floor((lo + hi) / 2)
    const t = n + new TreeGeometry(n).hashAreaBytes / BLOCK_SIZE
    if (t === total) return n
    if (t < total) lo = n + 1
    else hi = n - 1
  }
  return undefined
}
