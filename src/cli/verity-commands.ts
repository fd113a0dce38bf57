import type { Argv } from 'yargs'
import { commandLogger } from './command-logger.js'
import { openSource, type OpenedSource } from '../storage/open-source.js'
import { redactUrl } from '../log/redact.js'
import { silentLogger, type Logger } from '../log/logger.js'
import { findAppendedTree, readStoredTree, type StoredTree } from '../verity/image-tree.js'
import { VeritySource } from '../verity/verity-source.js'
import { verifyWholeImage } from '../verity/verify-image.js'
import { VerityError } from '../verity/errors.js'

export interface TreeLocation {
  tree: StoredTree
  /** Where the hash area is: the image itself, or a source this opened (the caller closes it). */
  hash: OpenedSource
  where: string
  /** The hash area is inside the image: the image proper is the data area before it. */
  inImage: boolean
}

/** The options every command that looks for a tree takes. */
export const TREE_OPTIONS = {
  hash: { type: 'string', describe: 'the hash tree as its own file or blob URL (as verity.hash_url); default: a tree appended to the image' },
  'hash-offset': { type: 'number', describe: 'byte offset of the hash area (in --hash, else in the image); default: 0 with --hash, else found after the data' },
} as const

/**
 * Finds the dm-verity hash area for `image`: --hash (a file or blob URL), --hash-offset inside
 * the image, or a tree appended after the data. Undefined when there is none and none was asked for.
 */
export async function locateTree(image: OpenedSource, o: { hash?: string; hashOffset?: number; private?: boolean; logger: Logger }): Promise<TreeLocation | undefined> {
  if (o.hash) {
    const hash = await openSource(o.hash, { private: o.private, logger: o.logger })
    try {
      const where = `--hash ${redactUrl(o.hash)}`
      return { tree: await readStoredTree(hash, o.hashOffset ?? 0, where, image), hash, where, inImage: false }
    } catch (err) {
      await hash.close()
      throw err
    }
  }
  if (o.hashOffset !== undefined) {
    const where = `the image at --hash-offset ${o.hashOffset}`
    return { tree: await readStoredTree(image, o.hashOffset, where, image), hash: image, where, inImage: true }
  }
  const tree = await findAppendedTree(image, 'the hash tree appended to the image')
  return tree ? { tree, hash: image, where: `the hash tree appended to the image at byte ${tree.hashOffset}`, inImage: true } : undefined
}

/** What `encfs inspect` shows of a superblock. */
export function describeTree(loc: TreeLocation): Record<string, string | number> {
  const { superblock: sb, geometry: g } = loc.tree
  return {
    location: loc.where,
    uuid: sb.uuid,
    hashType: sb.hashType,
    algorithm: sb.algorithm,
    dataBlockSize: sb.dataBlockSize,
    hashBlockSize: sb.hashBlockSize,
    dataBlocks: sb.dataBlocks,
    dataBytes: g.dataBytes,
    salt: sb.salt.toString('hex'),
    levels: g.levels,
    hashAreaBytes: g.hashAreaBytes,
    ...(loc.inImage ? { hashOffset: loc.tree.hashOffset } : {}),
    rootHash: loc.tree.rootHash,
  }
}

/** `encfs verify`: an image checked offline against a root hash, every block, before it is published or mounted. */
export function verityCommands<T>(y: Argv<T>): Argv<T> {
  return y.command(
    'verify <image>',
    'check every block of an image against a dm-verity root hash (the tree appended, or --hash), as remotefs will',
    (c) =>
      c
        .positional('image', { type: 'string', demandOption: true, describe: 'blob URL (SAS ok), file:// URL or path' })
        .option('root-hash', { type: 'string', demandOption: true, describe: 'the root hash to check against (verity.root_hash)' })
        .options(TREE_OPTIONS)
        .option('data-blocks', {
          type: 'number',
          describe: 'the data-block count to hold the tree to (verity.data_blocks); the data must in any case be the whole image, or everything before an appended tree',
        })
        .option('private', { type: 'boolean', default: false, describe: 'read blobs with the managed / workload identity' }),
    async (args) => {
      const logger = commandLogger(args)
      if (!/^[0-9a-fA-F]{64}$/.test(args['root-hash']))
        throw new VerityError('VERITY_BAD_ROOT_HASH', `--root-hash must be 64 hex digits (a sha256 root hash), got ${args['root-hash'].length} characters`)
      const image = await openSource(args.image, { private: args.private, logger })
      let loc: TreeLocation | undefined
      try {
        loc = await locateTree(image, { hash: args.hash, hashOffset: args['hash-offset'], private: args.private, logger })
        if (!loc) throw new VerityError('VERITY_NO_SUPERBLOCK', `${args.image}: no hash tree appended to the image; give it with --hash FILE|URL, or --hash-offset N`)
        // Every failure is listed on stdout below: the per-block log lines would only repeat them.
        const v = await VeritySource.open(image, loc.hash, {
          rootHash: Buffer.from(args['root-hash'], 'hex'),
          hashOffset: loc.tree.hashOffset,
          where: loc.where,
          logger: silentLogger,
          ...(args['data-blocks'] !== undefined ? { dataBlocks: args['data-blocks'] } : {}),
        })
        const check = await verifyWholeImage(v, { logger })
        if (check.bad.length === 0) {
          process.stdout.write(`verified: all ${check.dataBlocks} data blocks (${check.dataBlocks * 4096} bytes) match root hash ${args['root-hash'].toLowerCase()}\n`)
          return
        }
        const blocks = check.bad.reduce((n, r) => n + (r.end - r.start) / 4096, 0)
        for (const r of check.bad) {
          const what = r.end - r.start === 4096 ? `data block ${r.start / 4096}` : `data blocks ${r.start / 4096}-${r.end / 4096 - 1}`
          process.stdout.write(`modified: ${what} (image bytes ${r.start}-${r.end - 1})\n`)
        }
        throw new VerityError(
          'VERITY_IMAGE_MODIFIED',
          `${blocks} of ${check.dataBlocks} data blocks do not match root hash ${args['root-hash'].toLowerCase()} (${check.bad.length} range(s), listed above): this image is not the one that was published`,
        )
      } finally {
        if (loc && loc.hash !== image) await loc.hash.close()
        await image.close()
      }
    },
  )
}
