import { open, stat, rm } from 'node:fs/promises'
import type { RangeSource } from '../storage/range-source.js'
import { FileSource } from '../storage/file-source.js'
import { silentLogger, type Logger } from '../log/logger.js'
import { writeHashTree } from './build-tree.js'
import { BLOCK_SIZE, SIGNATURE, SUPERBLOCK_SIZE, parseSuperblock, type VeritySuperblock } from './superblock.js'
import { TreeGeometry, appendedDataBlocks } from './geometry.js'
import { hashBlock } from './hash-blocks.js'
import { VerityError } from './errors.js'

export interface FormattedTree {
  rootHash: string
  superblock: VeritySuperblock
  /** Where the hash area starts in the image (appended), or undefined when written to its own file. */
  hashOffset?: number
  hashOut?: string
  hashAreaBytes: number
}

/**
 * Hashes a whole image file into a dm-verity tree, as `veritysetup format` would: appended after
 * the data (hash_offset = the image size) or into a file of its own. The image must be whole
 * 4 KiB blocks (images encfs pack and cryptsetup make are).
 */
export async function formatImageTree(image: string, o: { hashOut?: string; logger?: Logger } = {}): Promise<FormattedTree> {
  const logger = o.logger ?? silentLogger
  const size = (await stat(image)).size
  if (size === 0 || size % BLOCK_SIZE !== 0) {
    throw new VerityError('VERITY_BAD_SIZE', `${image} is ${size} bytes, not whole 4096-byte blocks: dm-verity covers whole blocks (pad the image, or make it with encfs pack)`)
  }
  const data = await FileSource.open(image)
  const out = await open(o.hashOut ?? image, o.hashOut ? 'w' : 'r+', 0o644)
  const base = o.hashOut ? 0 : size
  try {
    logger.info({ image, bytes: size, out: o.hashOut ?? 'appended' }, 'building the dm-verity hash tree')
    const built = await writeHashTree(
      data,
      async (offset, bytes) => {
        await out.write(bytes, 0, bytes.length, base + offset)
      },
      { dataBlocks: size / BLOCK_SIZE, logger },
    )
    await out.sync()
    return {
      rootHash: built.rootHash.toString('hex'),
      superblock: built.superblock,
      hashAreaBytes: built.geometry.hashAreaBytes,
      ...(o.hashOut ? { hashOut: o.hashOut } : { hashOffset: size }),
    }
  } catch (err) {
    if (o.hashOut) await rm(o.hashOut, { force: true })
    else await out.truncate(size).catch(() => {})
    throw err
  } finally {
    await out.close()
    await data.close()
  }
}

export interface StoredTree {
  superblock: VeritySuperblock
  geometry: TreeGeometry
  hashOffset: number
  /** The root hash of the tree as stored: what verity.root_hash must be for it to verify. */
  rootHash: string
}

/**
 * The tree in `hash` at `hashOffset` as stored, its root hash computed from its top block (the
 * block itself is not checked against anything: this describes, `encfs verify` checks).
 */
export async function readStoredTree(hash: RangeSource, hashOffset: number, where: string, data?: RangeSource): Promise<StoredTree> {
  if (hash.size < hashOffset + SUPERBLOCK_SIZE) throw new VerityError('VERITY_NO_SUPERBLOCK', `${where}: no room for a dm-verity superblock at offset ${hashOffset}`)
  const superblock = parseSuperblock(await hash.read(hashOffset, SUPERBLOCK_SIZE), where)
  const geometry = new TreeGeometry(superblock.dataBlocks)
  if (hash.size < hashOffset + geometry.hashAreaBytes)
    throw new VerityError('VERITY_TRUNCATED', `${where}: the hash area is truncated (${hash.size - hashOffset} of ${geometry.hashAreaBytes} bytes)`)
  const top = geometry.levels === 0 ? await (data ?? hash).read(0, BLOCK_SIZE) : await hash.read(hashOffset + geometry.blockOffset(geometry.levels - 1, 0), BLOCK_SIZE)
  return { superblock, geometry, hashOffset, rootHash: hashBlock(superblock.salt, top).toString('hex') }
}

/** A tree appended to the image (encfs pack --verity, or veritysetup format --hash-offset=<data size>), if there is one. */
export async function findAppendedTree(image: RangeSource, where: string): Promise<StoredTree | undefined> {
  const blocks = appendedDataBlocks(image.size)
  if (blocks === undefined) return undefined
  const offset = blocks * BLOCK_SIZE
  if (!(await image.read(offset, SIGNATURE.length)).equals(SIGNATURE)) return undefined
  const tree = await readStoredTree(image, offset, where, image)
  return tree.superblock.dataBlocks === blocks ? tree : undefined
}

/** The `verity` member to paste into the filesystem's configuration; data_blocks pins how much of the image the tree covers. */
export function verityJson(rootHash: string, dataBlocks: number, where: { hashOffset: number } | { hashUrl: string }): string {
  const place = 'hashOffset' in where ? { hash_offset: where.hashOffset } : { hash_url: where.hashUrl }
  return `"verity": ${JSON.stringify({ root_hash: rootHash, ...place, data_blocks: dataBlocks })}`
}
