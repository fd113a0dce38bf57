// encfs import-key against the Key Vault emulator, then a release of what it imported.
import test from 'ava'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { readFile, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { ENCFS_JS } from '../helpers/remotefs.js'
import { vector } from '../helpers/vectors.js'
import { startSkrStack, type SkrStack } from '../helpers/skr-stack.js'
import { releasePolicy } from '../../src/skr/import-key.js'
import { releaseKey } from '../../src/skr/release.js'
import { deriveKeyFromRsa } from '../../src/skr/derive.js'
import { createPrivateKey } from 'node:crypto'

const exec = promisify(execFile)
let s: SkrStack
test.before(async () => { s = await startSkrStack() })
test.after.always(async () => { await s?.stop() })

test('the release policy built from Go importkey\'s README config is the one Go builds', async (t) => {
  const cfg = JSON.parse(await readFile(vector('config', 'importkeyconfig.readme-sample.json'), 'utf8')) as { key: { authority: { endpoint: string } }; claims: { claim: string; equals: string }[][] }
  t.is(releasePolicy(cfg.key.authority.endpoint, cfg.claims), (await readFile(vector('config', 'importkey.release_policy.expected.json'), 'utf8')).trim())
})

for (const kty of ['oct-HSM', 'RSA-HSM']) {
  test.serial(`import-key ${kty}: imported with the policy, released to the attested pod, and keyfile.bin is the filesystem key`, async (t) => {
    const bearer = (await s.authority.issue(s.akv.audience, 'operator')).token
    const config = {
      key: { kid: `imported-${kty.toLowerCase()}`, kty, authority: { endpoint: s.maa.endpoint }, akv: { endpoint: s.akv.endpoint, bearer_token: bearer } },
      key_derivation: { salt: 'ab'.repeat(32), label: 'Model Encryption Key' },
      claims: [[{ claim: 'x-ms-sevsnpvm-hostdata', equals: s.hostData.toString('hex') }, { claim: 'x-ms-sevsnpvm-is-debuggable', equals: 'false' }]],
    }
    const cfgFile = path.join(s.dir, `${kty}.json`)
    await writeFile(cfgFile, JSON.stringify(config))
    await writeFile(path.join(s.dir, 'ca.pem'), s.ca.join(''))
    const out = path.join(s.dir, `out-${kty}`)
    const { stdout } = await exec(process.execPath, [ENCFS_JS, 'import-key', '-c', cfgFile, '--out', out], { env: { ...process.env, NODE_EXTRA_CA_CERTS: path.join(s.dir, 'ca.pem') } })
    t.regex(stdout, new RegExp(`Key ID: https://127\\.0\\.0\\.1:\\d+/keys/${config.key.kid}/[0-9a-f]+`))
    t.regex(stdout, /Release policy: \{"version":"1\.0\.0","anyOf":\[\{"authority":"https:\/\/127\.0\.0\.1/)
    t.false(stdout.includes(bearer))
    const keyfile = await readFile(path.join(out, 'keyfile.bin'))
    t.is(keyfile.length, 32)
    const released = await releaseKey({ maaEndpoint: s.maa.endpoint, akvEndpoint: s.akv.endpoint, kid: config.key.kid, accessToken: bearer, provider: s.snp, collateral: s.collateral, uvm: s.uvm, ca: s.ca })
    const fsKey = released.kty === 'oct' ? released.material : deriveKeyFromRsa(createPrivateKey({ key: released.material, format: 'der', type: 'pkcs8' }), config.key_derivation.salt, config.key_derivation.label)
    t.deepEqual(fsKey, keyfile, 'the pod derives exactly the key the image was packed with')
  })
}

test('a config without claims or endpoints is refused, naming what is missing', async (t) => {
  const cfgFile = path.join(s.dir, 'bad.json')
  await writeFile(cfgFile, JSON.stringify({ key: { kid: 'x' } }))
  const err = await exec(process.execPath, [ENCFS_JS, 'import-key', '-c', cfgFile]).catch((e: { stderr: string; code: number }) => e)
  t.regex((err as { stderr: string }).stderr, /key\.authority\.endpoint, key\.akv\.endpoint, claims are required/)
})
