// encfs import-key as Go's importkey (flags, config, output, files) against the Key Vault
// emulator, then a release of what it imported.
import test from 'ava'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { mkdir, readFile, stat, writeFile, access } from 'node:fs/promises'
import path from 'node:path'
import { createPrivateKey, generateKeyPairSync, randomBytes } from 'node:crypto'
import { vector } from '../helpers/vectors.js'
import { E2eFixture, ENCFS_JS } from '../helpers/e2e.js'
import type { SkrStack } from '../helpers/skr-stack.js'
import { releasePolicy } from '../../src/skr/import-key.js'
import { releaseKey } from '../../src/skr/release.js'
import { deriveKeyFromRsa } from '../../src/skr/derive.js'

const exec = promisify(execFile)
const e2e = new E2eFixture(test)
let s: SkrStack
let bearer: string
test.before(async () => {
  s = await e2e.skrStack()
  bearer = (await s.authority.issue(s.akv.audience, 'operator')).token
  await writeFile(path.join(s.dir, 'ca.pem'), s.ca.join(''))
})

const claims = () => [
  [
    { claim: 'x-ms-sevsnpvm-hostdata', equals: s.hostData.toString('hex') },
    { claim: 'x-ms-sevsnpvm-is-debuggable', equals: 'false' },
  ],
]

/** Runs import-key as Go's importkey is run: in a directory of its own, with a config file there. */
async function importkey(
  name: string,
  config: Record<string, unknown>,
  flags: string[],
  extraEnv: Record<string, string> = {},
): Promise<{ cwd: string; code: number; stdout: string; stderr: string }> {
  const cwd = path.join(s.dir, name)
  await mkdir(cwd, { recursive: true })
  await writeFile(path.join(cwd, 'importkeyconfig.json'), JSON.stringify(config))
  return exec(process.execPath, [ENCFS_JS, 'import-key', '-c', 'importkeyconfig.json', ...flags], {
    cwd,
    env: { ...process.env, NODE_EXTRA_CA_CERTS: path.join(s.dir, 'ca.pem'), ...extraEnv },
  }).then(
    (r) => ({ cwd, code: 0, ...r }),
    (e: { code: number; stdout: string; stderr: string }) => ({ cwd, code: e.code, stdout: e.stdout, stderr: e.stderr }),
  )
}

const keyConfig = (kid: string, kty: string, extra: Record<string, unknown> = {}) => ({
  key: { kid, kty, authority: { endpoint: s.maa.endpoint }, akv: { endpoint: s.akv.endpoint, bearer_token: bearer } },
  claims: claims(),
  ...extra,
})

const release = (kid: string) => releaseKey(s.releaseOptions(kid, bearer))

test("the release policy built from Go importkey's README config is the one Go builds", async (t) => {
  const cfg = JSON.parse(await readFile(vector('config', 'importkeyconfig.readme-sample.json'), 'utf8')) as {
    key: { authority: { endpoint: string } }
    claims: { claim: string; equals: string }[][]
  }
  t.is(releasePolicy(cfg.key.authority.endpoint, cfg.claims), (await readFile(vector('config', 'importkey.release_policy.expected.json'), 'utf8')).trim())
})

test.serial(
  'Go\'s documented "importkey -c importkeyconfig.json -out=true" with -kh hex: keyfile.bin in the current directory, Go\'s output, akv.api_version honoured',
  async (t) => {
    const key = randomBytes(32)
    const r = await importkey(
      'oct',
      keyConfig('go-oct', 'oct-HSM', {
        key: { ...keyConfig('go-oct', 'oct-HSM').key, akv: { endpoint: s.akv.endpoint, bearer_token: bearer, api_version: 'api-version=7.3-preview' } },
      }),
      ['-kh', key.toString('hex'), '-out=true'],
    )
    t.is(r.code, 0, r.stderr)
    const lines = r.stdout.trimEnd().split('\n')
    t.is(lines[0], `Symmetric key ${key.toString('hex')}`)
    t.regex(lines[1]!, /^https:\/\/127\.0\.0\.1:\d+\/keys\/go-oct\/[0-9a-f]+$/)
    t.is(lines[2], releasePolicy(s.maa.endpoint, claims()))
    t.is(lines.length, 3)
    t.false(r.stdout.includes(bearer))
    t.deepEqual(await readFile(path.join(r.cwd, 'keyfile.bin')), key)
    t.is(s.akv.imports.at(-1)?.apiVersion, '7.3-preview')
    t.deepEqual((await release('go-oct')).material, key)
  },
)

test.serial('-kh names a file: its raw bytes are the key (as Go does); -out absent: no keyfile.bin', async (t) => {
  const key = randomBytes(32)
  await mkdir(path.join(s.dir, 'khfile'), { recursive: true })
  await writeFile(path.join(s.dir, 'khfile', 'my.key'), key)
  const r = await importkey('khfile', keyConfig('go-oct-file', ''), ['-kh', 'my.key'])
  t.is(r.code, 0, r.stderr)
  t.is(r.stdout.split('\n')[0], `Symmetric key ${key.toString('hex')}`)
  await t.throwsAsync(access(path.join(r.cwd, 'keyfile.bin')))
  t.deepEqual((await release('go-oct-file')).material, key)
  t.is(s.akv.imports.at(-1)?.apiVersion, '7.4', 'no akv.api_version: 7.4')
})

test.serial(
  'RSA-HSM generated: private_key.pem is always written (0600, never over another); -out with an empty salt prints the random salt, and the pod derives the same key with it',
  async (t) => {
    const r = await importkey('rsa', keyConfig('go-rsa', 'RSA-HSM', { key_derivation: { label: 'Model Encryption Key' } }), ['-out'])
    t.is(r.code, 0, r.stderr)
    const m = /^Symmetric key ([0-9a-f]{64}) \(salt: ([0-9a-f]{64}) label: Model Encryption Key\)$/m.exec(r.stdout)
    t.truthy(m, r.stdout)
    const [, derivedHex, salt] = m!
    const pem = path.join(r.cwd, 'private_key.pem')
    t.is((await stat(pem)).mode & 0o777, 0o600)
    const privateKey = createPrivateKey(await readFile(pem, 'utf8'))
    t.is(deriveKeyFromRsa(privateKey, salt!, 'Model Encryption Key').toString('hex'), derivedHex!)
    t.is((await readFile(path.join(r.cwd, 'keyfile.bin'))).toString('hex'), derivedHex!)
    const sent = JSON.parse(s.akv.imports.at(-1)!.body) as { key: Record<string, unknown> }
    t.deepEqual(Object.keys(sent.key), ['d', 'dp', 'dq', 'e', 'key_ops', 'kty', 'n', 'p', 'q', 'qi'], "jwx's member order")
    t.is(sent.key.kty, 'RSA')
    t.deepEqual(sent.key.key_ops, [])
    const released = await release('go-rsa')
    t.is(deriveKeyFromRsa(createPrivateKey({ key: released.material, format: 'der', type: 'pkcs8' }), salt!, 'Model Encryption Key').toString('hex'), derivedHex!)

    const again = await importkey('rsa', keyConfig('go-rsa-2', 'RSA-HSM'), [])
    t.is(again.code, 1)
    t.regex(again.stderr, /private_key\.pem exists: move it away first.*\[IMPORT_KEY_EXISTS\]/)
    t.deepEqual(createPrivateKey(await readFile(pem, 'utf8')).export({ format: 'jwk' }), privateKey.export({ format: 'jwk' }), 'the earlier key is untouched')
    t.false(
      s.akv.imports.some((i) => i.name === 'go-rsa-2'),
      'nothing imported',
    )
  },
)

test.serial('-kp imports an existing RSA key (no key_ops, as Go); --out DIR is kept as an extension; claims are re-serialised as Go does', async (t) => {
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey
  await mkdir(path.join(s.dir, 'kp'), { recursive: true })
  await writeFile(path.join(s.dir, 'kp', 'mine.pem'), rsa.export({ type: 'pkcs8', format: 'pem' }))
  const odd = [[{ equals: 'a<b&c', claim: 'x-ms-custom', note: 'dropped' }]]
  const r = await importkey('kp', { ...keyConfig('go-rsa-kp', 'RSA-HSM'), claims: odd, key_derivation: { salt: 'ab'.repeat(32) } }, ['-kp', 'mine.pem', '--out', 'keys'])
  t.is(r.code, 0, r.stderr)
  t.regex(r.stdout, new RegExp(`^Symmetric key ${deriveKeyFromRsa(rsa, 'ab'.repeat(32)).toString('hex')} \\(salt: ${'ab'.repeat(32)} label: Symmetric Encryption Key\\)$`, 'm'))
  t.deepEqual(await readFile(path.join(r.cwd, 'keys', 'keyfile.bin')), deriveKeyFromRsa(rsa, 'ab'.repeat(32)))
  await t.throwsAsync(access(path.join(r.cwd, 'private_key.pem')), undefined, 'an imported key is not written out again')
  const sent = JSON.parse(s.akv.imports.at(-1)!.body) as { key: Record<string, unknown>; release_policy: { data: string } }
  t.false('key_ops' in sent.key)
  const policy = Buffer.from(sent.release_policy.data, 'base64url').toString()
  t.is(policy, `{"version":"1.0.0","anyOf":[{"authority":"https://${s.maa.endpoint}","allOf":[{"claim":"x-ms-custom","equals":"a\\u003cb\\u0026c"}]}]}`)
})

test.serial('-a takes the vault token from the managed identity, not key.akv.bearer_token', async (t) => {
  const { startImdsEmulator } = await import('../../src/emulators/imds/server.js')
  const imds = await startImdsEmulator(s.authority)
  t.teardown(() => imds.stop())
  const config = keyConfig('go-oct-identity', 'oct-HSM', { identity: { client_id: 'operator-identity' } })
  ;(config.key.akv as Record<string, string>).bearer_token = 'not-a-token'
  const withoutA = await importkey('identity', config, [], { AZURE_POD_IDENTITY_AUTHORITY_HOST: imds.url })
  t.is(withoutA.code, 1, 'without -a the configured (bad) bearer token is used')
  t.regex(withoutA.stderr, /HTTP 401/)
  const unlisted = await importkey('identity', config, ['-a'], { AZURE_POD_IDENTITY_AUTHORITY_HOST: imds.url })
  t.regex(unlisted.stderr, /key\.akv\.endpoint "127\.0\.0\.1:\d+" is not a Key Vault or Managed HSM .*\[SKR_VAULT_UNTRUSTED\]/, 'no identity token for a vault that is not listed')
  t.is(imds.requests, 0)
  const r = await importkey('identity', config, ['-a'], { AZURE_POD_IDENTITY_AUTHORITY_HOST: imds.url, EncfsVaultHosts: s.vaultHostsEnv })
  t.is(r.code, 0, r.stderr)
  t.regex(r.stdout, /\/keys\/go-oct-identity\//)
})

test('a config without claims or endpoints, or with a non-string claim value, is refused, naming what is wrong', async (t) => {
  const r = await importkey('bad', { key: { kid: 'x' } }, [])
  t.regex(r.stderr, /key\.authority\.endpoint, key\.akv\.endpoint, claims are required/)
  const typed = await importkey('bad2', { ...keyConfig('x', 'oct-HSM'), claims: [[{ claim: 'x-ms-sevsnpvm-is-debuggable', equals: false }]] }, [])
  t.regex(typed.stderr, /claims\[0\]\[0\]\.equals must be a string/)
})
