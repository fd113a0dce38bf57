import type { Argv } from 'yargs'
import { readFile } from 'node:fs/promises'
import { commandLogger } from './command-logger.js'
import { openSource } from '../storage/open-source.js'
import { readLuksHeader, payloadRange, type LuksHeader } from '../luks/header.js'
import { unlockAnyVolumeKey } from '../luks/volume-key.js'
import { kdfName } from '../luks/kdf-params.js'
import { kdfBudgetOptions, kdfBudgetFrom } from './kdf-options.js'
import { decodeRawKey } from '../keys/raw-key.js'
import { KeyError } from '../keys/errors.js'
import { locateTree, describeTree, TREE_OPTIONS } from './verity-commands.js'

async function readKey(args: { 'key-file'?: string; 'key-hex'?: string }): Promise<Buffer> {
  if (args['key-file']) return readFile(args['key-file'])
  if (args['key-hex']) return decodeRawKey(args['key-hex'], '--key-hex')
  throw new KeyError('KEY_MISSING', 'give the key with --key-file FILE or --key-hex HEX')
}

/** What encfs inspect prints: the header's facts, its keyslots, the verity tree if any. */
function summarize(header: LuksHeader, payload: { offset: number; length: number }, verity: ReturnType<typeof describeTree> | undefined) {
  return {
    luks: header.version,
    uuid: header.uuid,
    ...(header.version === 2 ? { label: header.label, headerCopy: header.copy } : {}),
    cipher: header.segment.encryption,
    volumeKeyBits: header.segment.keySize * 8,
    sectorSize: header.segment.sectorSize,
    payloadOffset: payload.offset,
    payloadBytes: payload.length,
    // Which unlock modes can open it: the userspace path, or only cryptsetup (--unlock kernel).
    unlock: header.userspaceProblem ? `kernel only (${header.userspaceProblem.message})` : 'userspace or kernel',
    keyslots:
      header.version === 2
        ? header.keyslots.map((k) => ({ id: k.id, kdf: kdfName(k.kdf), priority: k.priority }))
        : header.keyslots.map((k) => ({ id: k.id, kdf: `pbkdf2-${header.hash}`, priority: 1 })),
    ...(verity ? { verity } : {}),
  }
}

function printSummary(header: LuksHeader, summary: ReturnType<typeof summarize>): void {
  process.stdout.write(`LUKS${header.version} image, header valid${header.version === 2 ? ` (${header.copy} copy)` : ''}\n`)
  for (const [k, v] of Object.entries(summary)) {
    if (k !== 'keyslots' && k !== 'headerCopy' && k !== 'luks' && k !== 'verity') process.stdout.write(`  ${k}: ${String(v)}\n`)
  }
  for (const k of summary.keyslots) process.stdout.write(`  keyslot ${k.id}: ${k.kdf}, priority ${k.priority}\n`)
  if (summary.verity) {
    process.stdout.write('dm-verity superblock (the root hash is computed from the tree as stored; verity.root_hash must equal it)\n')
    for (const [k, v] of Object.entries(summary.verity)) process.stdout.write(`  ${k}: ${String(v)}\n`)
  }
}

/** `encfs inspect`: the header validated as remotefs does, and what it holds. */
export function inspectCommand<T>(y: Argv<T>): Argv<T> {
  return y.command(
    'inspect <image>',
    "validate an image's LUKS2 or LUKS1 header the way remotefs does, and print what it contains (and its dm-verity superblock, if any)",
    (y) =>
      y
        .positional('image', { type: 'string', demandOption: true, describe: 'blob URL (SAS ok), file:// URL or path' })
        .option('private', { type: 'boolean', default: false, describe: 'read the blob with the managed / workload identity' })
        .option('json', { type: 'boolean', default: false })
        .options(TREE_OPTIONS),
    async (args) => {
      const logger = commandLogger(args)
      const source = await openSource(args.image, { private: args.private, logger })
      const tree = await locateTree(source, { hash: args.hash, hashOffset: args['hash-offset'], private: args.private, logger }).catch(async (err: unknown) => {
        await source.close()
        throw err
      })
      try {
        const header = await readLuksHeader(source, { logger })
        // A tree inside the image is not LUKS payload: the image proper is the data before it.
        const payload = payloadRange(header, tree?.inImage ? tree.tree.geometry.dataBytes : source.size)
        const summary = summarize(header, payload, tree ? describeTree(tree) : undefined)
        if (args.json) process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`)
        else printSummary(header, summary)
      } finally {
        if (tree && tree.hash !== source) await tree.hash.close()
        await source.close()
      }
    },
  )
}

/** `encfs check-key`: does a key open a keyslot? */
export function checkKeyCommand<T>(y: Argv<T>): Argv<T> {
  return y.command(
    'check-key <image>',
    'tell whether a key opens a keyslot of the image, without mounting anything',
    (y) =>
      kdfBudgetOptions(y)
        .positional('image', { type: 'string', demandOption: true })
        .option('key-file', { type: 'string', describe: 'file whose bytes are the key (as cryptsetup --key-file)' })
        .option('key-hex', { type: 'string', describe: 'the key as hex' })
        .option('private', { type: 'boolean', default: false }),
    async (args) => {
      const logger = commandLogger(args)
      const key = await readKey(args)
      const source = await openSource(args.image, { private: args.private, logger })
      try {
        const header = await readLuksHeader(source, { logger })
        const { volumeKey, keyslot } = await unlockAnyVolumeKey(source, header, key, { logger, budget: kdfBudgetFrom(args) })
        volumeKey.fill(0)
        process.stdout.write(`the key opens keyslot ${keyslot}\n`)
      } finally {
        key.fill(0)
        await source.close()
      }
    },
  )
}
