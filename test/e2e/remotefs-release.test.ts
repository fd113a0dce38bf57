// remotefs mounting images whose keys come from secure key release: simulated SNP, the MAA,
// Key Vault and IMDS emulators, Azurite, real cryptsetup images, real mounts.
import test from 'ava'
import { writeFile, mkdtemp, rm } from 'node:fs/promises'
import { generateKeyPairSync, randomBytes } from 'node:crypto'
import os from 'node:os'
import path from 'node:path'
import { startAzurite, uploadFile, type Azurite } from '../helpers/azurite.js'
import { makeEncryptedImage, type TestImage } from '../helpers/images.js'
import { startSidecar, stopSidecar, waitReady, sidecarArgs, readFromChild, leftovers, mountWorkspace } from '../helpers/remotefs.js'
import { startSkrStack, type SkrStack } from '../helpers/skr-stack.js'
import { startImdsEmulator, type ImdsEmulator } from '../../src/emulators/imds/server.js'
import { importKey, releasePolicy } from '../../src/skr/import-key.js'
import { deriveKeyFromRsa } from '../../src/skr/derive.js'

let az: Azurite
let s: SkrStack
let imds: ImdsEmulator
let caFile: string
let emptyContext: string
const cleanups: (() => Promise<void>)[] = []
const octKey = randomBytes(32)
const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey
const salt = randomBytes(32).toString('hex')
let oct: TestImage
let derived: TestImage

test.before(async () => {
  az = await startAzurite()
  s = await startSkrStack()
  imds = await startImdsEmulator(s.authority)
  caFile = path.join(s.dir, 'emulator-ca.pem')
  await writeFile(caFile, s.ca.join(''))
  emptyContext = await mkdtemp(path.join(os.tmpdir(), 'encfs-ctx-'))
  const bearer = (await s.authority.issue(s.akv.audience, 'operator')).token
  const claims = [[{ claim: 'x-ms-sevsnpvm-hostdata', equals: s.hostData.toString('hex') }, { claim: 'x-ms-sevsnpvm-is-debuggable', equals: 'false' }]]
  await importKey({ akvEndpoint: s.akv.endpoint, name: 'oct-key', key: { kty: 'oct-HSM', k: octKey.toString('base64url') }, policy: releasePolicy(s.maa.endpoint, claims), bearer, ca: s.ca })
  await importKey({ akvEndpoint: s.akv.endpoint, name: 'rsa-key', key: { ...rsa.export({ format: 'jwk' }), kty: 'RSA-HSM' }, policy: releasePolicy(s.maa.endpoint, claims), bearer, ca: s.ca })
  oct = await makeEncryptedImage({ key: octKey, files: { 'oct.txt': 'released by key vault\n' } })
  derived = await makeEncryptedImage({ key: deriveKeyFromRsa(rsa, salt, 'Model Key'), files: { 'rsa.txt': 'derived from an RSA key\n' } })
})
test.after.always(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => {})
  await oct?.cleanup()
  await derived?.cleanup()
  await imds?.stop()
  await s?.stop()
  await az?.stop()
  await rm(emptyContext, { recursive: true, force: true })
})

const sidecarEnv = () => ({
  NODE_EXTRA_CA_CERTS: caFile,
  UVM_SECURITY_CONTEXT_DIR: emptyContext,
  UVM_SECURITY_POLICY: s.policyBase64,
  UVM_REFERENCE_INFO: s.uvm.referenceInfo,
  UVM_HOST_AMD_CERTIFICATE: Buffer.from(JSON.stringify(s.uvm.hostAmdCertificate)).toString('base64'),
  AZURE_POD_IDENTITY_AUTHORITY_HOST: imds.url,
})

test.serial('an oct key (bearer token) and an RSA-derived key (managed identity via IMDS) are released and the images mounted', async (t) => {
  const a = await uploadFile(az, oct.image, { kind: 'block' })
  const b = await uploadFile(az, derived.image, { kind: 'page' })
  const ws = await mountWorkspace(cleanups)
  const mpA = path.join(ws.parent, 'oct')
  const mpB = path.join(ws.parent, 'rsa')
  const bearer = (await s.authority.issue(s.akv.audience, 'pod')).token
  const sidecar = await startSidecar(sidecarArgs([
    { mount_point: mpA, azure_url: a.sasUrl, key: { kid: 'oct-key', kty: 'oct-HSM', authority: { endpoint: s.maa.endpoint }, akv: { endpoint: s.akv.endpoint, bearer_token: bearer } } },
    { mount_point: mpB, azure_url: b.sasUrl, key: { kid: 'rsa-key', kty: 'RSA-HSM', authority: { endpoint: s.maa.endpoint }, akv: { endpoint: s.akv.endpoint } }, key_derivation: { salt, label: 'Model Key' } },
  ], { azure_info: { identity: { client_id: 'pod-identity' } } }), { args: ['--attestation', 'simulated', '--simulated-state', `${s.dir}/snp`], env: sidecarEnv() })
  cleanups.push(async () => { await stopSidecar(sidecar) })
  await waitReady(sidecar, [mpA, mpB])
  t.is((await readFromChild(path.join(mpA, 'oct.txt'))).toString(), 'released by key vault\n')
  t.is((await readFromChild(path.join(mpB, 'rsa.txt'))).toString(), 'derived from an RSA key\n')
  const log = await sidecar.log()
  t.regex(log, /SIMULATED SEV-SNP report/)
  t.regex(log, /key release: key released/)
  t.false(log.includes(bearer), 'the bearer token is not logged')
  t.false(log.includes(octKey.toString('hex')) || log.includes(octKey.toString('base64url')), 'the key is not logged')
  t.true(imds.requests >= 1, 'the managed identity token came from IMDS')
  t.is(await stopSidecar(sidecar), 0)
  t.deepEqual(await leftovers(sidecar.runtimeDir, [path.join(ws.parent, '.filesystem-0'), path.join(ws.parent, '.filesystem-1')]), [])
  await rm(sidecar.logFile, { force: true })
})

test.serial('a pod whose policy hash the key does not allow is refused with the vault\'s reason, and nothing is mounted', async (t) => {
  const a = await uploadFile(az, oct.image, { kind: 'block' })
  const ws = await mountWorkspace(cleanups)
  const mp = path.join(ws.parent, 'x')
  const bearer = (await s.authority.issue(s.akv.audience, 'pod')).token
  const sidecar = await startSidecar(sidecarArgs([
    { mount_point: mp, azure_url: a.sasUrl, key: { kid: 'oct-key', authority: { endpoint: s.maa.endpoint }, akv: { endpoint: s.akv.endpoint, bearer_token: bearer } } },
  ]), { args: ['--attestation', 'simulated', '--simulated-state', `${s.dir}/snp`], env: { ...sidecarEnv(), UVM_SECURITY_POLICY: Buffer.from('another policy').toString('base64') } })
  const code = await sidecar.exited
  t.not(code, 0)
  t.regex(sidecar.output(), /filesystem 0 .*key release of oct-key from 127\.0\.0\.1:\d+ failed with HTTP 403 .*x-ms-sevsnpvm-hostdata/)
  t.deepEqual(await leftovers(sidecar.runtimeDir, [path.join(ws.parent, '.filesystem-0')]), [])
  await rm(sidecar.runtimeDir, { recursive: true, force: true })
  await rm(sidecar.logFile, { force: true })
})
