// The whole secure key release against the emulators: simulated SNP, MAA, Key Vault.
import test from 'ava'
import { generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto'
import { startSkrStack, type SkrStack } from '../helpers/skr-stack.js'
import { releaseKey } from '../../src/skr/release.js'
import { importKey, releasePolicy } from '../../src/skr/import-key.js'
import { deriveKeyFromRsa } from '../../src/skr/derive.js'
import { simulatedProvider } from '../../src/attestation/providers/simulated.js'

let s: SkrStack
let bearer: string
const octKey = randomBytes(32)
let rsa: KeyObject

test.before(async () => {
  s = await startSkrStack()
  bearer = (await s.authority.issue(s.akv.audience, 'operator')).token
  const claims = [
    [
      { claim: 'x-ms-sevsnpvm-hostdata', equals: s.hostData.toString('hex') },
      { claim: 'x-ms-compliance-status', equals: 'azure-compliant-uvm' },
      { claim: 'x-ms-sevsnpvm-is-debuggable', equals: 'false' },
      { claim: 'x-ms-sevsnpvm-vmpl', equals: '0' },
    ],
  ]
  await s.importKey('fs-oct', { kty: 'oct-HSM', k: octKey.toString('base64url'), key_size: 256, key_ops: ['encrypt', 'decrypt'] }, claims)
  rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey
  await s.importKey('fs-rsa', { ...rsa.export({ format: 'jwk' }), kty: 'RSA-HSM' }, claims)
  await s.importKey('other-pod', { kty: 'oct-HSM', k: randomBytes(32).toString('base64url') }, [[{ claim: 'x-ms-sevsnpvm-hostdata', equals: '00'.repeat(32) }]])
})
test.after.always(async () => {
  await s?.stop()
})

const opts = (kid: string) => s.releaseOptions(kid, bearer)

test('an oct key is released to the attested pod: the same 32 bytes, as an oct JWK', async (t) => {
  const key = await releaseKey(opts('fs-oct'))
  t.is(key.kty, 'oct')
  t.deepEqual(key.material, octKey)
  t.deepEqual(key.jwk(), { k: octKey.toString('base64url'), key_ops: ['encrypt', 'decrypt'], kty: 'oct' })
})

test('an RSA key is released as a private JWK and derives the same filesystem key as the original', async (t) => {
  const key = await releaseKey(opts('fs-rsa'))
  t.is(key.kty, 'RSA')
  const jwk = key.jwk()
  t.truthy(jwk.d)
  const { createPrivateKey } = await import('node:crypto')
  const released = createPrivateKey({ key: key.material, format: 'der', type: 'pkcs8' })
  const derived = deriveKeyFromRsa(released, 'ab'.repeat(32), 'Label')
  t.is(derived.length, 32)
  t.deepEqual(derived, deriveKeyFromRsa(rsa, 'ab'.repeat(32), 'Label'), 'the same filesystem key as the imported original')
  t.notDeepEqual(derived, deriveKeyFromRsa(rsa, 'ab'.repeat(32), 'Other label'))
})

test('refusals name the step, the endpoint and the reason', async (t) => {
  const policy = await t.throwsAsync(releaseKey(opts('other-pod')))
  t.is((policy as { code?: string }).code, 'SKR_RELEASE_REFUSED')
  t.regex(policy!.message, /HTTP 403 .*release policy is not satisfied: anyOf\[0\]\.allOf\[0\]: x-ms-sevsnpvm-hostdata is [0-9a-f]+, not 0+ .*encfs release --explain/)
  const missing = await t.throwsAsync(releaseKey(opts('no-such-key')))
  t.regex(missing!.message, /HTTP 404 KeyNotFound.*check key\.kid/)
  const storageToken = (await s.authority.issue('https://storage.azure.com', 'pod')).token
  const wrongAudience = await t.throwsAsync(releaseKey({ ...opts('fs-oct'), accessToken: storageToken }))
  t.regex(wrongAudience!.message, /HTTP 401 .*not for https:\/\/vault\.azure\.net/)
  const expired = (await s.authority.issue(s.akv.audience, 'pod', -10)).token
  t.regex((await t.throwsAsync(releaseKey({ ...opts('fs-oct'), accessToken: expired })))!.message, /HTTP 401 .*expired/)
  // A report from a chip MAA does not trust never gets a token.
  const rogue = simulatedProvider({ stateDir: `${s.dir}/rogue`, hostData: s.hostData })
  const { Collateral } = await import('../../src/attestation/collateral.js')
  const rogueUvm = { ...s.uvm, hostAmdCertificate: await rogue.thimCerts() }
  const maa = await t.throwsAsync(releaseKey({ ...opts('fs-oct'), provider: rogue, uvm: rogueUvm, collateral: new Collateral({ uvm: rogueUvm }) }))
  t.is((maa as { code?: string }).code, 'MAA_ATTEST_FAILED')
  t.regex(maa!.message, /not among the trusted roots/)
  // Without the emulators' CA, the vault's JWS chain is untrusted.
  const untrusted = await t.throwsAsync(releaseKey({ ...opts('fs-oct'), ca: [s.maa.caPem] }))
  t.regex(untrusted!.message, /NODE_EXTRA_CA_CERTS/)
})

test('an expired MAA token never reaches the vault (MAA_TOKEN_EXPIRED), and the vault refuses one sent to it; a Managed HSM takes only tokens for managedhsm.azure.net', async (t) => {
  const { startMaaEmulator } = await import('../../src/emulators/maa/server.js')
  const { startAkvEmulator } = await import('../../src/emulators/akv/server.js')
  const { parsePemChain } = await import('../../src/attestation/cert-chain.js')
  const { thimChainPem } = await import('../../src/attestation/thim.js')
  const { attestSevSnp } = await import('../../src/maa/client.js')
  const { maaReportData } = await import('../../src/attestation/report-data.js')
  const { request } = await import('../../src/http/request.js')
  const staleMaa = await startMaaEmulator({ tokenLifetimeSeconds: -600, trustedArks: parsePemChain(thimChainPem(await s.snp.thimCerts())).slice(2) })
  const hsm = await startAkvEmulator({ authority: s.authority, maaCas: [staleMaa.caPem, s.maa.caPem], managedHsm: true })
  t.teardown(async () => {
    await hsm.stop()
    await staleMaa.stop()
  })
  const ca = [...s.ca, staleMaa.caPem, hsm.caPem]
  const hsmBearer = (await s.authority.issue('https://managedhsm.azure.net', 'operator')).token
  const policy = (maa: string) => releasePolicy(maa, [[{ claim: 'x-ms-sevsnpvm-hostdata', equals: s.hostData.toString('hex') }]])
  await importKey({ akvEndpoint: hsm.endpoint, name: 'k1', key: { kty: 'oct-HSM', k: octKey.toString('base64url') }, policy: policy(staleMaa.endpoint), bearer: hsmBearer, ca })
  await importKey({ akvEndpoint: hsm.endpoint, name: 'k2', key: { kty: 'oct-HSM', k: octKey.toString('base64url') }, policy: policy(s.maa.endpoint), bearer: hsmBearer, ca })
  const base = { akvEndpoint: hsm.endpoint, provider: s.snp, collateral: s.collateral, uvm: s.uvm, ca, vaultHosts: [{ endpoint: hsm.endpoint, audience: hsm.audience }] }
  const released = hsm.releases
  const expired = await t.throwsAsync(releaseKey({ ...base, maaEndpoint: staleMaa.endpoint, kid: 'k1', accessToken: hsmBearer }))
  t.is((expired as { code?: string }).code, 'MAA_TOKEN_EXPIRED')
  t.regex(expired!.message, /the MAA token expired at .* s of clock skew allowed/)
  t.is(hsm.releases, released)
  // The vault checks for itself: the same stale token, sent to it directly.
  const runtime = Buffer.from('{"keys":[]}')
  const stale = await attestSevSnp(
    { report: await s.snp.getReport(maaReportData(runtime)), vcekCertChain: thimChainPem(await s.snp.thimCerts()), runtimeData: runtime, nonce: 1n },
    { endpoint: staleMaa.endpoint, ca },
  )
  const refused = await request(`https://${hsm.endpoint}/keys/k1/release?api-version=7.4`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${hsmBearer}` },
    body: JSON.stringify({ target: stale }),
    what: 'test release',
    ca,
  })
  t.is(refused.status, 403)
  t.regex(refused.body.toString(), /cannot be verified: the MAA token expired at/)
  t.deepEqual((await releaseKey({ ...base, maaEndpoint: s.maa.endpoint, kid: 'k2', accessToken: hsmBearer })).material, octKey)
  const vaultBearer = (await s.authority.issue('https://vault.azure.net', 'operator')).token
  t.regex(
    (await t.throwsAsync(releaseKey({ ...base, maaEndpoint: s.maa.endpoint, kid: 'k2', accessToken: vaultBearer })))!.message,
    /HTTP 401 .*not for https:\/\/managedhsm\.azure\.net/,
  )
})
