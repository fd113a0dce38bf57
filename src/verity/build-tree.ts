import type { RangeSource } from '../storage/range-source.js'
import { silentLogger, type Logger } from '../log/logger.js'
import { BLOCK_SIZE, DIGEST_SIZE, encodeSuperblock, newSuperblock, type VeritySuperblock } from './superblock.js'
import { FANOUT, TreeGeometry } from './geometry.js'
import { hashBlocks, hashBlock } from './hash-blocks.js'
import { VerityError } from './errors.js'

/** Receives the hash area: `offset` is relative to its start (the superblock). */
export type HashAreaSink = (offset: number, bytes: Buffer) => Promise<void>

export interface BuiltTree {
  superblock: VeritySuperblock
  geometry: TreeGeometry
  rootHash: Buffer
}

/** Data read per step: whole level-0 hash blocks (128 data blocks = 512 KiB each). */
const CHUNK = 8 * FANOUT * BLOCK_SIZE

/**
 * Writes the dm-verity hash area (superblock and tree, as `veritysetup format` lays them out) for
 * the first `dataBlocks` 4 KiB blocks of `data`. Level 0 goes to the sink as the data streams by;
 * only the levels above it (1/128 of its size) are held in memory.
 */
export async function writeHashTree(data: RangeSource, sink: HashAreaSink, o: { dataBlocks?: number; salt?: Buffer; uuid?: string; logger?: Logger } = {}): Promise<BuiltTree> {
  const logger = o.logger ?? silentLogger
  const dataBlocks = o.dataBlocks ?? Math.floor(data.size / BLOCK_SIZE)
  if (dataBlocks < 1 || dataBlocks * BLOCK_SIZE > data.size) {
    throw new VerityError('VERITY_BAD_SIZE', `cannot hash ${dataBlocks} blocks of 4096 bytes from ${data.size} bytes of data`)
  }
  const superblock = newSuperblock(dataBlocks, { salt: o.salt, uuid: o.uuid })
  const geometry = new TreeGeometry(dataBlocks)
  const salt = superblock.salt
  await sink(0, encodeSuperblock(superblock))
  if (geometry.levels === 0) {
    return { superblock, geometry, rootHash: hashBlock(salt, await data.read(0, BLOCK_SIZE)) }
  }
  // Level 1 and up, in memory: entries of level i+1 = hashes of level i's blocks.
  const upper = geometry.levelBlocks.map((blocks, level) => Buffer.alloc(level === 0 ? 0 : blocks * BLOCK_SIZE))
  const digests = Buffer.allocUnsafe((CHUNK / BLOCK_SIZE) * DIGEST_SIZE)
  let top: Buffer | undefined
  let lastLog = Date.now()
  for (let off = 0; off < dataBlocks * BLOCK_SIZE; off += CHUNK) {
    const len = Math.min(CHUNK, dataBlocks * BLOCK_SIZE - off)
    const chunk = await data.read(off, len)
    const n = len / BLOCK_SIZE
    // Level-0 entries for these data blocks, padded with zeros to whole hash blocks.
    const level0 = Buffer.alloc(Math.ceil(n / FANOUT) * BLOCK_SIZE)
    hashBlocks(salt, chunk, digests).copy(level0, 0, 0, n * DIGEST_SIZE)
    const firstHashBlock = off / BLOCK_SIZE / FANOUT
    await sink(geometry.blockOffset(0, firstHashBlock), level0)
    // One level: level 0 is the top, a single block, all in this (only) chunk.
    if (geometry.levels === 1) top = level0
    if (geometry.levels > 1) hashBlocks(salt, level0).copy(upper[1]!, firstHashBlock * DIGEST_SIZE)
    if (Date.now() - lastLog > 5000) {
      logger.info({ bytes: off + len, of: dataBlocks * BLOCK_SIZE }, 'hashing the image')
      lastLog = Date.now()
    }
  }
  for (let level = 1; level < geometry.levels; level++) {
    const blocks = upper[level]!
    await sink(geometry.blockOffset(level, 0), blocks)
    if (level + 1 < geometry.levels) hashBlocks(salt, blocks).copy(upper[level + 1]!, 0)
  }
  return { superblock, geometry, rootHash: hashBlock(salt, top ?? upper[geometry.levels - 1]!) }
}
