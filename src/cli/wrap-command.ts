import type { Argv } from 'yargs'
import { writeFile } from 'node:fs/promises'
import type { Logger } from '../log/logger.js'
import { commandLogger } from './command-logger.js'
import { wrapWithKeyInfo } from '../keyprovider-grpc/wrap.js'
import { KeyProviderError } from '../keyprovider-grpc/errors.js'
import { readSmallFile } from '../keyprovider-grpc/bounded-file.js'

/** RSA-OAEP-SHA256 wraps at most 1982 bytes (RSA-16384); anything much larger is not a secret to wrap. */
const MAX_INFILE_BYTES = 64 * 1024

/**
 * Go's `skr -infile F -keypath P -outfile O`: wraps F with the public key named by P-info.json
 * and writes the standard base64 of the annotation (no newline) to O. Nothing is written when a
 * step fails.
 */
export async function wrapFile(o: { infile: string; keypath: string; outfile: string; logger: Logger }): Promise<void> {
  const data = await readSmallFile(
    o.infile,
    MAX_INFILE_BYTES,
    (reason, cause) => new KeyProviderError('KEYPROVIDER_INFILE', `cannot read the file to wrap ${o.infile} (${reason})`, { cause }),
  )
  try {
    const { annotation, fields } = await wrapWithKeyInfo(data, o.keypath)
    await writeFile(o.outfile, annotation.toString('base64')).catch((err: NodeJS.ErrnoException) => {
      const why = err.code === 'EISDIR' ? 'it is a directory; name the file to write' : (err.code ?? err.message)
      throw new KeyProviderError('KEYPROVIDER_OUTFILE', `cannot write the annotation to -outfile ${o.outfile} (${why})`, { cause: err })
    })
    o.logger.info({ kid: fields.kid, akv: fields.kmsEndpoint, maa: fields.attesterEndpoint, outfile: o.outfile }, 'wrapped')
    process.stderr.write(`wrote the annotation for key ${fields.kid} (${fields.kmsEndpoint}, MAA ${fields.attesterEndpoint}) to ${o.outfile}\n`)
  } finally {
    data.fill(0)
  }
}

/** `encfs wrap`: make an annotation offline, without a keyprovider server. */
export function wrapCommand<T>(y: Argv<T>): Argv<T> {
  return y.command(
    'wrap',
    'wrap a secret with an RSA public key into a keyprovider annotation, offline (Go skr -infile -keypath -outfile); UnWrapKey releases the private key to unwrap it',
    (c) =>
      c
        .parserConfiguration({ 'short-option-groups': false })
        .option('infile', { type: 'string', demandOption: true, describe: 'the secret to wrap (at most the key size in bytes minus 66)' })
        .option('keypath', { type: 'string', demandOption: true, describe: "the wrapping key's path without -info.json; its last element is the key name in the vault" })
        .option('outfile', { type: 'string', demandOption: true, describe: 'where to write the standard base64 of the annotation' }),
    async (args) => {
      await wrapFile({ infile: args.infile, keypath: args.keypath, outfile: args.outfile, logger: commandLogger(args) })
    },
  )
}
