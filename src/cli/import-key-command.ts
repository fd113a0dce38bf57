import type { Argv } from 'yargs'
import { generateKeyPairSync, randomBytes } from 'node:crypto'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { commandLogger } from './command-logger.js'
import { EncfsError } from '../errors.js'
import { importKey, releasePolicy, type ReleasePolicyClaim } from '../skr/import-key.js'
import { vaultToken } from '../skr/vault-token.js'
import { deriveKeyFromRsa, DEFAULT_DERIVATION_LABEL } from '../skr/derive.js'

interface ImportKeyConfig {
  key?: { kid?: string; kty?: string; key_ops?: string[]; authority?: { endpoint?: string }; akv?: { endpoint?: string; bearer_token?: string } }
  key_derivation?: { salt?: string; label?: string }
  claims?: ReleasePolicyClaim[][]
  identity?: { client_id?: string }
}

/** `encfs import-key`: the Go importkey tool, reading the same config file. */
export function importKeyCommand<T>(y: Argv<T>): Argv<T> {
  return y.command(
    'import-key',
    'create a key (oct or RSA) and import it into Key Vault / Managed HSM with a release policy from the config\'s claims (Go importkey)',
    (c) => c
      .option('c', { alias: 'config', type: 'string', demandOption: true, describe: 'importkeyconfig.json (key, key_derivation, claims, identity)' })
      .option('out', { type: 'string', describe: 'directory to write keyfile.bin (the filesystem key for encfs pack) and, for RSA, private_key.pem' })
      .option('key-file', { type: 'string', describe: 'oct: use these bytes as the key instead of 32 random bytes' }),
    async (args) => {
      const logger = commandLogger(args)
      let cfg: ImportKeyConfig
      try {
        cfg = JSON.parse(await readFile(args.c, 'utf8')) as ImportKeyConfig
      } catch (err) {
        throw new EncfsError('IMPORT_CONFIG', `${args.c}: ${(err as Error).message}`)
      }
      const k = cfg.key
      const missing = [!k?.kid && 'key.kid', !k?.authority?.endpoint && 'key.authority.endpoint', !k?.akv?.endpoint && 'key.akv.endpoint', !cfg.claims?.length && 'claims'].filter(Boolean)
      if (missing.length) throw new EncfsError('IMPORT_CONFIG', `${args.c}: ${missing.join(', ')} ${missing.length > 1 ? 'are' : 'is'} required`)
      const akv = k!.akv!.endpoint!
      const policy = releasePolicy(k!.authority!.endpoint!, cfg.claims!)
      const kty = k!.kty || 'oct-HSM'
      let jwk: Record<string, unknown>
      let keyfile: Buffer
      let privatePem: string | undefined
      if (kty === 'oct-HSM' || kty === 'oct') {
        keyfile = args['key-file'] ? await readFile(args['key-file']) : randomBytes(32)
        jwk = { kty: 'oct-HSM', ...(k!.key_ops ? { key_ops: k!.key_ops } : {}), k: keyfile.toString('base64url'), key_size: keyfile.length * 8 }
      } else if (kty === 'RSA-HSM' || kty === 'RSA') {
        const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 })
        privatePem = privateKey.export({ type: 'pkcs8', format: 'pem' }) as string
        jwk = { ...privateKey.export({ format: 'jwk' }), kty: 'RSA-HSM', key_ops: k!.key_ops ?? [] }
        keyfile = deriveKeyFromRsa(privateKey, cfg.key_derivation?.salt ?? '', cfg.key_derivation?.label || DEFAULT_DERIVATION_LABEL)
      } else throw new EncfsError('IMPORT_CONFIG', `key.kty ${kty} is not supported: oct-HSM or RSA-HSM`)
      try {
        const bearer = k!.akv!.bearer_token || (await vaultToken(akv, cfg.identity, { logger }))
        const { kid } = await importKey({ akvEndpoint: akv, name: k!.kid!, key: jwk, policy, bearer })
        if (args.out) {
          await mkdir(args.out, { recursive: true })
          await writeFile(path.join(args.out, 'keyfile.bin'), keyfile, { mode: 0o600 })
          if (privatePem) await writeFile(path.join(args.out, 'private_key.pem'), privatePem, { mode: 0o600 })
        }
        process.stdout.write(`Key ID: ${kid}\nRelease policy: ${policy}\n${args.out ? `Filesystem key written to ${path.join(args.out, 'keyfile.bin')} (use it with encfs pack --key-file)\n` : ''}`)
      } finally {
        keyfile.fill(0)
      }
    },
  )
}
