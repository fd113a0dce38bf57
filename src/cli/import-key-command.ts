import type { Argv } from 'yargs'
import { createPrivateKey, generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto'
import { mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { commandLogger } from './command-logger.js'
import { EncfsError } from '../errors/encfs-error.js'
import { importKey, releasePolicy, type ReleasePolicyClaim } from '../skr/import-key.js'
import { vaultToken } from '../skr/vault-token.js'
import { trustedVault } from '../skr/vault-hosts.js'
import { DEFAULT_DERIVATION_LABEL } from '../skr/derive.js'
import { filesystemKey } from '../keys/filesystem-key.js'
import { isObject, Reader, type JsonObject } from '../encoding/go-json.js'

export interface ImportKeyConfig {
  kid: string
  kty: string
  keyOps?: string[]
  maaEndpoint: string
  akvEndpoint: string
  apiVersion?: string
  bearerToken?: string
  salt: string
  label: string
  claims: ReleasePolicyClaim[][]
  identity?: { client_id?: string }
}

const fail = (file: string, problems: string[]): never => {
  throw new EncfsError('IMPORT_CONFIG', `${file}: ${problems.join('; ')}`)
}

/** importkeyconfig.json read as Go reads it (member names in any case, unknown members ignored), with every problem named. */
export function parseImportKeyConfig(text: string, file: string): ImportKeyConfig {
  let raw: unknown
  try {
    raw = JSON.parse(text)
  } catch (err) {
    return fail(file, [`not JSON: ${(err as Error).message}`])
  }
  if (!isObject(raw)) return fail(file, ['must be a JSON object'])
  const r = new Reader()
  const key = r.object(raw, 'key', 'key') ?? {}
  const authority = r.object(key, 'authority', 'key.authority') ?? {}
  const akv = r.object(key, 'akv', 'key.akv') ?? {}
  const derivation = r.object(raw, 'key_derivation', 'key_derivation') ?? {}
  const identity = r.object(raw, 'identity', 'identity')
  // Go's config type is [][]{claim, equals}; a flat list (as in Go's README) is one allOf group.
  const claimsRaw = r.member(raw, 'claims')
  const groups: unknown[] = Array.isArray(claimsRaw) ? (claimsRaw.every((g) => Array.isArray(g)) ? claimsRaw : [claimsRaw]) : []
  const claims = groups.map((g, i) =>
    (g as unknown[]).map((c, j): ReleasePolicyClaim => {
      const where = `claims[${i}][${j}]`
      if (!isObject(c)) {
        r.add(where, 'must be an object {"claim": …, "equals": "…"}')
        return { claim: '', equals: '' }
      }
      const claim = r.string(c, 'claim', `${where}.claim`) ?? ''
      const equals = r.string(c, 'equals', `${where}.equals`)
      if (!claim) r.add(`${where}.claim`, 'is required')
      if (equals === undefined) r.add(`${where}.equals`, 'is required (a string: "false", "0")')
      return { claim, equals: equals ?? '' }
    }),
  )
  const cfg = {
    kid: r.string(key, 'kid', 'key.kid') ?? '',
    kty: r.string(key, 'kty', 'key.kty') ?? '',
    keyOps: r.stringArray(key, 'key_ops', 'key.key_ops'),
    maaEndpoint: r.string(authority, 'endpoint', 'key.authority.endpoint') ?? '',
    akvEndpoint: r.string(akv, 'endpoint', 'key.akv.endpoint') ?? '',
    apiVersion: r.string(akv, 'api_version', 'key.akv.api_version'),
    bearerToken: r.string(akv, 'bearer_token', 'key.akv.bearer_token'),
    salt: r.string(derivation, 'salt', 'key_derivation.salt') ?? '',
    label: r.string(derivation, 'label', 'key_derivation.label') ?? '',
    claims,
    identity: identity ? { client_id: r.string(identity as JsonObject, 'client_id', 'identity.client_id') } : undefined,
  }
  const missing = [!cfg.kid && 'key.kid', !cfg.maaEndpoint && 'key.authority.endpoint', !cfg.akvEndpoint && 'key.akv.endpoint', claims.flat().length === 0 && 'claims'].filter(
    (m): m is string => typeof m === 'string',
  )
  if (missing.length) r.add(missing.join(', '), `${missing.length > 1 ? 'are' : 'is'} required`)
  if (cfg.salt && !/^([0-9a-fA-F]{2})+$/.test(cfg.salt)) r.add('key_derivation.salt', 'must be hex')
  if (r.issues.length)
    fail(
      file,
      r.issues.map((i) => `${i.path} ${i.message}`),
    )
  return cfg
}

/** Go's -kh: the bytes of the file it names, or else the value itself as hex. */
async function octKeyFrom(kh: string): Promise<Buffer> {
  const isFile = await stat(kh).then(
    (s) => s.isFile(),
    () => false,
  )
  if (isFile) return readFile(kh)
  if (!/^([0-9a-fA-F]{2})+$/.test(kh)) throw new EncfsError('IMPORT_KEY_HEX', '-kh: no such file, and not a hex string either (give a key file, or the key as hex)')
  return Buffer.from(kh, 'hex')
}

/**
 * Go's -out is a boolean (-out, -out=true: keyfile.bin in the current directory); encfs also
 * takes a directory (--out DIR), where private_key.pem goes too.
 */
export function outDirectory(out: string | undefined): string | undefined {
  if (out === undefined || /^(false|0)$/i.test(out)) return undefined
  if (out === '' || /^(true|1)$/i.test(out)) return '.'
  return out
}

/** The key to import, as Go's importkey makes it: the JWK to send, the filesystem key for --out, the RSA key file to write, and the lines to print. */
async function keyToImport(
  cfg: ImportKeyConfig,
  file: string,
  o: { kh?: string; kp?: string; outDir?: string },
): Promise<{ jwk: Record<string, unknown>; keyfile?: Buffer; generatedPem?: { path: string; pem: string }; lines: string[] }> {
  const lines: string[] = []
  if (cfg.kty === 'RSA-HSM' || cfg.kty === 'RSA') {
    let privateKey: KeyObject
    let jwk: Record<string, unknown>
    let generatedPem: { path: string; pem: string } | undefined
    if (o.kp) {
      privateKey = createPrivateKey(
        await readFile(o.kp, 'utf8').catch((err: Error) => {
          throw new EncfsError('IMPORT_KEY_PEM', `-kp ${o.kp}: ${err.message}`)
        }),
      )
      if (privateKey.asymmetricKeyType !== 'rsa') throw new EncfsError('IMPORT_KEY_PEM', `-kp ${o.kp}: not an RSA private key`)
      // As Go: an imported PEM carries no key_ops.
      jwk = sortedJwk(privateKey.export({ format: 'jwk' }))
    } else {
      privateKey = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey
      generatedPem = { path: path.join(o.outDir ?? '.', 'private_key.pem'), pem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string }
      // As Go (jwx): kty RSA, members in name order, key_ops always present ([] when not configured).
      jwk = sortedJwk({ ...privateKey.export({ format: 'jwk' }), key_ops: cfg.keyOps ?? [] })
    }
    if (o.outDir === undefined) return { jwk, generatedPem, lines }
    // Go prints the salt it drew: the same salt must go into key_derivation of the sidecar's config.
    const salt = cfg.salt || randomBytes(32).toString('hex')
    const label = cfg.label || DEFAULT_DERIVATION_LABEL
    const keyfile = filesystemKey({ kty: 'RSA', privateKey }, { salt, label }, `the RSA key for ${cfg.kid}`)
    lines.push(`Symmetric key ${keyfile.toString('hex')} (salt: ${salt.toLowerCase()} label: ${label})`)
    return { jwk, keyfile, generatedPem, lines }
  }
  if (cfg.kty === 'oct-HSM' || cfg.kty === 'oct' || cfg.kty === '') {
    const oct = o.kh ? await octKeyFrom(o.kh) : randomBytes(32)
    lines.push(`Symmetric key ${oct.toString('hex')}`)
    return { jwk: { kty: 'oct-HSM', ...(cfg.keyOps?.length ? { key_ops: cfg.keyOps } : {}), k: oct.toString('base64url'), key_size: oct.length * 8 }, keyfile: oct, lines }
  }
  throw new EncfsError('IMPORT_CONFIG', `${file}: key.kty ${cfg.kty} is not supported: oct-HSM (the default) or RSA-HSM`)
}

/** `encfs import-key`: the Go importkey tool, with its flags, config file and output. */
export function importKeyCommand<T>(y: Argv<T>): Argv<T> {
  return y.command(
    'import-key',
    "create a key (oct or RSA) and import it into Key Vault / Managed HSM with a release policy from the config's claims (Go importkey: -c, -kh, -kp, -a, -out)",
    (c) =>
      c
        .option('c', { alias: 'config', type: 'string', demandOption: true, describe: 'importkeyconfig.json (key, key_derivation, claims, identity)' })
        .option('kh', { type: 'string', describe: 'oct key: a file whose bytes are the key, or the key as hex (default: 32 random bytes)' })
        .option('kp', { type: 'string', describe: 'RSA-HSM: import this RSA private key (PKCS#8 PEM) instead of generating one' })
        .option('a', { type: 'boolean', default: false, describe: 'get the vault token from the managed identity (identity.client_id), not key.akv.bearer_token' })
        .option('out', { type: 'string', describe: '-out or -out=true: write keyfile.bin (the filesystem key for encfs pack) in the current directory; --out DIR: in DIR' })
        .option('key-file', { type: 'string', hidden: true, describe: 'the same as -kh FILE' }),
    async (args) => {
      const logger = commandLogger(args)
      const file = args.c
      const cfg = parseImportKeyConfig(await readFile(file, 'utf8').catch((err: Error) => fail(file, [err.message])), file)
      const outDir = outDirectory(args.out)
      const kh = args.kh ?? args['key-file']
      const { jwk, keyfile, generatedPem, lines } = await keyToImport(cfg, file, { kh, kp: args.kp, outDir })
      const policy = releasePolicy(cfg.maaEndpoint, cfg.claims)
      try {
        // The generated private key is the only copy: written first (never over another one), removed again if the import fails.
        if (generatedPem) {
          await mkdir(path.dirname(generatedPem.path), { recursive: true })
          await writeFile(generatedPem.path, generatedPem.pem, { mode: 0o600, flag: 'wx' }).catch((err: NodeJS.ErrnoException) => {
            throw new EncfsError(
              'IMPORT_KEY_EXISTS',
              err.code === 'EEXIST'
                ? `${generatedPem!.path} exists: move it away first (it may be the only copy of an earlier key), or use --out DIR`
                : `${generatedPem!.path}: ${err.message}`,
            )
          })
        }
        let kid: string
        try {
          const bearer =
            !args.a && cfg.bearerToken
              ? cfg.bearerToken
              : await vaultToken(trustedVault(cfg.akvEndpoint, { field: 'key.akv.endpoint' }), cfg.identity, { logger, purpose: 'import' })
          kid = (await importKey({ akvEndpoint: cfg.akvEndpoint, name: cfg.kid, key: jwk, policy, bearer, apiVersion: cfg.apiVersion })).kid
        } catch (err) {
          if (generatedPem) await rm(generatedPem.path, { force: true })
          throw err
        }
        if (keyfile && outDir !== undefined) {
          await mkdir(outDir, { recursive: true })
          await writeFile(path.join(outDir, 'keyfile.bin'), keyfile, { mode: 0o600 })
          process.stderr.write(`filesystem key written to ${path.join(outDir, 'keyfile.bin')} (use it with encfs pack --key-file)\n`)
        }
        if (generatedPem) process.stderr.write(`RSA private key written to ${generatedPem.path}\n`)
        // Go's output, less the request body it also prints (it carries the key material).
        process.stdout.write(`${[...lines, kid, policy].join('\n')}\n`)
      } finally {
        keyfile?.fill(0)
      }
    },
  )
}

function sortedJwk(jwk: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(jwk).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
}
