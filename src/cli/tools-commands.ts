import type { Argv } from 'yargs'
import { readFile } from 'node:fs/promises'
import { commandLogger } from './command-logger.js'
import type { Logger } from '../log/logger.js'
import { pack } from '../pack/pack.js'
import { createHash } from 'node:crypto'
import { decodeGoStdBase64 } from '../encoding/base64.js'
import { EncfsError } from '../errors/encfs-error.js'
import { uploadImage } from '../storage/upload.js'
import { storageCredential } from '../storage/credential.js'
import { redactUrl } from '../log/redact.js'
import { formatImageTree, findAppendedTree, readStoredTree, verityJson } from '../verity/image-tree.js'
import { FileSource } from '../storage/file-source.js'
import { rm } from 'node:fs/promises'

function parseSize(s: string): number {
  const m = /^(\d+)([KMG]?)i?B?$/i.exec(s.trim())
  if (!m) throw new EncfsError('PACK_SIZE', `--size ${s}: use bytes or a K/M/G suffix, e.g. 256M`)
  return Number(m[1]) * ({ '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 }[m[2]!.toUpperCase()] ?? 1)
}

/** `https://a/c/image.img?sas` -> `https://a/c/image.img.verity?sas`: the blob next to it, same query. */
function siblingUrl(url: string, suffix: string): string {
  const q = url.indexOf('?')
  return q < 0 ? `${url}${suffix}` : `${url.slice(0, q)}${suffix}${url.slice(q)}`
}

/** Runs `f` over local files opened as sources, and closes them. */
async function describeFiles<R>(hashFile: string, image: string, f: (hash: FileSource, data: FileSource) => Promise<R>): Promise<R> {
  const hash = await FileSource.open(hashFile)
  const data = await FileSource.open(image).catch(async (err: unknown) => {
    await hash.close()
    throw err
  })
  try {
    return await f(hash, data)
  } finally {
    await hash.close()
    await data.close()
  }
}

/** `encfs pack --verity`: the hash tree appended (or written to --hash-out), and what to put in the configuration; the image is removed if that fails. */
async function addVerityTree(image: string, hashOut: string | undefined, logger: Logger): Promise<void> {
  const tree = await formatImageTree(image, { hashOut, logger }).catch(async (err: unknown) => {
    await rm(image, { force: true })
    throw err
  })
  process.stdout.write(`dm-verity root hash: ${tree.rootHash}\n`)
  if (tree.hashOut) {
    process.stdout.write(
      `hash tree written to ${tree.hashOut} (${tree.hashAreaBytes} bytes): upload it with the image (encfs upload ${image} <blob URL> --hash-file ${tree.hashOut}) and add to the filesystem's configuration:\n`,
    )
    process.stdout.write(`  ${verityJson(tree.rootHash, tree.superblock.dataBlocks, { hashUrl: '<blob URL of the hash tree>' })}\n`)
  } else {
    process.stdout.write(`hash tree appended at byte ${tree.hashOffset} (${tree.hashAreaBytes} bytes); add to the filesystem's configuration:\n`)
    process.stdout.write(`  ${verityJson(tree.rootHash, tree.superblock.dataBlocks, { hashOffset: tree.hashOffset! })}\n`)
  }
}

/** `encfs pack`: the Go repo's generatefs.sh without device-mapper. */
function packCommand<T>(y: Argv<T>): Argv<T> {
  return y.command(
    'pack',
    "pack a directory into a LUKS2-encrypted ext4 image with encfs's own writer (no device-mapper, no root needed)",
    (c) =>
      c
        .option('from', { type: 'string', demandOption: true, describe: 'directory whose files go into the image' })
        .option('out', { type: 'string', demandOption: true, describe: 'image file to write' })
        .option('key-file', { type: 'string', demandOption: true, describe: 'the key file (32 bytes: an oct key, or the derived key import-key writes)' })
        .option('size', { type: 'string', describe: 'ext4 size (e.g. 256M); default: computed from the directory' })
        .option('sector-size', { type: 'number', choices: [512, 1024, 2048, 4096], default: 4096 })
        .option('pbkdf', { type: 'string', choices: ['pbkdf2', 'argon2id'] as const, default: 'pbkdf2' as const })
        .option('iterations', { type: 'number', describe: 'pbkdf2 iterations (default 200000)' })
        .option('verity', { type: 'boolean', default: false, describe: 'add a dm-verity hash tree (appended to the image) and print the root hash to pin in the configuration' })
        .option('hash-out', { type: 'string', describe: 'with --verity: write the hash tree to this file instead of appending it (upload it with encfs upload --hash-file)' }),
    async (args) => {
      const logger = commandLogger(args)
      const key = await readFile(args['key-file']).catch((err: Error) => {
        throw new EncfsError('PACK_KEY', `--key-file ${args['key-file']}: ${err.message}`)
      })
      try {
        const r = await pack({
          from: args.from,
          out: args.out,
          key,
          logger,
          size: args.size ? parseSize(args.size) : undefined,
          sectorSize: args['sector-size'] as 512 | 1024 | 2048 | 4096,
          pbkdf: args.pbkdf,
          iterations: args.iterations,
        })
        process.stdout.write(`${args.out}: ${r.bytes} bytes (16 MiB LUKS2 header + ${r.fsBytes / 1024 / 1024} MiB ext4), aes-xts-plain64, ${args['sector-size']}-byte sectors\n`)
        if (args.verity || args['hash-out']) await addVerityTree(args.out, args['hash-out'], logger)
      } finally {
        key.fill(0)
      }
    },
  )
}

/** `encfs upload`: an image (and its hash tree) to blob storage. */
function uploadCommand<T>(y: Argv<T>): Argv<T> {
  return y.command(
    'upload <image> <url>',
    'upload an image to blob storage: a page blob with --page (needed for read_write), else a block blob',
    (c) =>
      c
        .positional('image', { type: 'string', demandOption: true })
        .positional('url', { type: 'string', demandOption: true, describe: 'blob URL with a SAS that may create and write (sp=cw or rw), or use --private' })
        .option('page', { type: 'boolean', default: false })
        .option('private', { type: 'boolean', default: false, describe: 'authenticate with the managed / workload identity' })
        .option('hash-file', { type: 'string', describe: 'also upload this dm-verity hash tree (encfs pack --hash-out)' })
        .option('hash-url', { type: 'string', describe: 'where the hash tree goes (default: the image URL with .verity appended to the blob name)' }),
    async (args) => {
      const logger = commandLogger(args)
      const credential = args.private ? storageCredential(undefined, { logger }) : undefined
      // A hash file that is not a tree is refused before anything is uploaded.
      const hashFile = args['hash-file']
      const stored = hashFile ? await describeFiles(hashFile, args.image, (h, d) => readStoredTree(h, 0, `--hash-file ${hashFile}`, d)) : undefined
      const r = await uploadImage(args.image, args.url, { page: args.page, credential, logger })
      process.stdout.write(`uploaded ${r.bytes} bytes as a ${r.kind} blob to ${redactUrl(args.url)}\n`)
      if (hashFile && stored) {
        const hashUrl = args['hash-url'] ?? siblingUrl(args.url, '.verity')
        const h = await uploadImage(hashFile, hashUrl, { page: false, credential, logger })
        process.stdout.write(
          `uploaded the hash tree (${h.bytes} bytes) to ${redactUrl(hashUrl)}; the filesystem's configuration (hash_url needs read access: a SAS, or azure_url_private):\n`,
        )
        process.stdout.write(`  ${verityJson(stored.rootHash, stored.superblock.dataBlocks, { hashUrl: hashUrl.split('?')[0]! })}\n`)
      } else {
        const tree = await describeFiles(args.image, args.image, (img) => findAppendedTree(img, 'the hash tree appended to the image'))
        if (tree)
          process.stdout.write(
            `the image carries its dm-verity hash tree; the filesystem's configuration:\n  ${verityJson(tree.rootHash, tree.superblock.dataBlocks, { hashOffset: tree.hashOffset })}\n`,
          )
      }
    },
  )
}

/** `encfs policy-digest`: Go's securitypolicydigest. */
function policyDigestCommand<T>(y: Argv<T>): Argv<T> {
  return y.command(
    'policy-digest',
    'print the SHA-256 digest of a security policy: the host_data a release policy binds to (Go securitypolicydigest)',
    (c) =>
      c
        .option('p', { alias: 'policy', type: 'string', describe: 'the policy as base64 (as in the ARM template ccePolicy)' })
        .option('f', { alias: 'file', type: 'string', describe: 'a file holding the base64 policy' })
        .option('v', { alias: 'verbose', type: 'boolean', default: false, describe: 'also print the decoded policy' }),
    async (args) => {
      // As Go's securitypolicydigest: one source only, strict standard base64 (CR/LF skipped).
      if (args.p !== undefined && args.f !== undefined)
        throw new EncfsError('POLICY_BOTH', 'give the policy with -p <base64> or -f <file>, not both (as Go\'s securitypolicydigest: "Cannot specify both -p and -f")')
      const b64 =
        args.p ??
        (args.f !== undefined
          ? await readFile(args.f, 'utf8').catch((err: Error) => {
              throw new EncfsError('POLICY_FILE', `-f ${args.f}: ${err.message}`)
            })
          : undefined)
      if (b64 === undefined) throw new EncfsError('POLICY_MISSING', 'give the policy with -p <base64> or -f <file>')
      const policy = decodeGoStdBase64(b64)
      if (!policy)
        throw new EncfsError(
          'POLICY_BASE64',
          `${args.p !== undefined ? '-p' : args.f}: could not decode: standard base64 with padding is required (as the ccePolicy in the ARM template)`,
        )
      const digest = createHash('sha256').update(policy).digest('hex')
      if (args.v) process.stdout.write(`inittimeData ${policy.toString('utf8')}\ninittimeData sha-256 digest ${digest}\n`)
      else process.stdout.write(`${digest}\n`)
    },
  )
}

/** `encfs pack`, `encfs upload` and `encfs policy-digest`. */
export function toolsCommands<T>(y: Argv<T>): Argv<T> {
  return policyDigestCommand(uploadCommand(packCommand(y)))
}
