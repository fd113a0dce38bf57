// remotefs mounting images whose keys come from secure key release: simulated SNP, the MAA,
// Key Vault and IMDS emulators, Azurite, real cryptsetup images, real mounts.
import test from 'ava'
import { writeFile, readFile } from 'node:fs/promises'
import { spawn } from 'node:child_process'
import { generateKeyPairSync, randomBytes } from 'node:crypto'
import path from 'node:path'
import { E2eFixture, sidecarArgs, stopSidecar, waitReady, readFromChild, leftovers, runEncfs, ENCFS_JS, type TestImage } from '../helpers/e2e.js'
import { request } from '../../src/http/request.js'
import type { SkrStack } from '../helpers/skr-stack.js'
import { startImdsEmulator, type ImdsEmulator } from '../../src/emulators/imds/server.js'
import { deriveKeyFromRsa } from '../../src/skr/derive.js'

const e2e = new E2eFixture(test)
let s: SkrStack
let imds: ImdsEmulator
let caFile: string
let emptyContext: string
const octKey = randomBytes(32)
const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey
const salt = randomBytes(32).toString('hex')
let oct: TestImage
let derived: TestImage

test.before(async () => {
  s = await e2e.skrStack()
  imds = await startImdsEmulator(s.authority)
  e2e.defer(() => imds.stop())
  caFile = path.join(s.dir, 'emulator-ca.pem')
  await writeFile(caFile, s.ca.join(''))
  emptyContext = await e2e.tempDir('encfs-ctx-')
  const claims = [
    [
      { claim: 'x-ms-sevsnpvm-hostdata', equals: s.hostData.toString('hex') },
      { claim: 'x-ms-sevsnpvm-is-debuggable', equals: 'false' },
    ],
  ]
  await s.importKey('oct-key', octKey, claims)
  await s.importKey('rsa-key', { ...rsa.export({ format: 'jwk' }), kty: 'RSA-HSM' }, claims)
  oct = await e2e.image({ key: octKey, files: { 'oct.txt': 'released by key vault\n' } })
  derived = await e2e.image({ key: deriveKeyFromRsa(rsa, salt, 'Model Key'), files: { 'rsa.txt': 'derived from an RSA key\n' } })
})

const sidecarEnv = () => ({
  NODE_EXTRA_CA_CERTS: caFile,
  UVM_SECURITY_CONTEXT_DIR: emptyContext,
  UVM_SECURITY_POLICY: s.policyBase64,
  UVM_REFERENCE_INFO: s.uvm.referenceInfo,
  // No UVM_HOST_AMD_CERTIFICATE: the simulated chip's own chain is the collateral.
  AZURE_POD_IDENTITY_AUTHORITY_HOST: imds.url,
  EncfsVaultHosts: s.vaultHostsEnv,
})

test.serial('an oct key (bearer token) and an RSA-derived key (managed identity via IMDS) are released and the images mounted', async (t) => {
  const a = await e2e.upload(oct.image, { kind: 'block' })
  const b = await e2e.upload(derived.image, { kind: 'page' })
  const ws = await e2e.workspace()
  const mpA = path.join(ws.parent, 'oct')
  const mpB = path.join(ws.parent, 'rsa')
  const bearer = (await s.authority.issue(s.akv.audience, 'pod')).token
  const sidecar = await e2e.sidecar(
    sidecarArgs(
      [
        {
          mount_point: mpA,
          azure_url: a.sasUrl,
          key: { kid: 'oct-key', kty: 'oct-HSM', authority: { endpoint: s.maa.endpoint }, akv: { endpoint: s.akv.endpoint, bearer_token: bearer } },
        },
        {
          mount_point: mpB,
          azure_url: b.sasUrl,
          key: { kid: 'rsa-key', kty: 'RSA-HSM', authority: { endpoint: s.maa.endpoint }, akv: { endpoint: s.akv.endpoint } },
          key_derivation: { salt, label: 'Model Key' },
        },
      ],
      { azure_info: { identity: { client_id: 'pod-identity' } } },
    ),
    { args: ['--attestation', 'simulated', '--simulated-state', `${s.dir}/snp`], env: sidecarEnv() },
  )
  await waitReady(sidecar, [mpA, mpB])
  t.is((await readFromChild(path.join(mpA, 'oct.txt'))).toString(), 'released by key vault\n')
  t.is((await readFromChild(path.join(mpB, 'rsa.txt'))).toString(), 'derived from an RSA key\n')
  const log = await sidecar.log()
  t.regex(log, /SIMULATED SEV-SNP report/)
  t.regex(log, /using the simulated chip's own VCEK chain as the certificate collateral/)
  t.regex(log, /key release: key released/)
  // Without the API or gRPC, remotefs still learns Go skr's default MAA User-Agent from the identity.
  t.regex(log, /setting default MAA User-Agent to: ConfidentialSkrContainer client_id=pod-identity/)
  t.false(log.includes(bearer), 'the bearer token is not logged')
  t.false(log.includes(octKey.toString('hex')) || log.includes(octKey.toString('base64url')), 'the key is not logged')
  t.true(imds.requests >= 1, 'the managed identity token came from IMDS')
  t.is(await stopSidecar(sidecar), 0)
  t.deepEqual(await leftovers(sidecar.runtimeDir, [path.join(ws.parent, '.filesystem-0'), path.join(ws.parent, '.filesystem-1')]), [])
})

test.serial("a pod whose policy hash the key does not allow is refused with the vault's reason, and nothing is mounted", async (t) => {
  const a = await e2e.upload(oct.image, { kind: 'block' })
  const ws = await e2e.workspace()
  const mp = path.join(ws.parent, 'x')
  const bearer = (await s.authority.issue(s.akv.audience, 'pod')).token
  const r = await e2e.runToEnd(
    [{ mount_point: mp, azure_url: a.sasUrl, key: { kid: 'oct-key', authority: { endpoint: s.maa.endpoint }, akv: { endpoint: s.akv.endpoint, bearer_token: bearer } } }],
    { args: ['--attestation', 'simulated', '--simulated-state', `${s.dir}/snp`], env: { ...sidecarEnv(), UVM_SECURITY_POLICY: Buffer.from('another policy').toString('base64') } },
  )
  t.not(r.code, 0)
  t.regex(r.output, /filesystem 0 .*key release of oct-key from 127\.0\.0\.1:\d+ failed with HTTP 403 .*x-ms-sevsnpvm-hostdata/)
  t.deepEqual(await leftovers(r.runtimeDir, [path.join(ws.parent, '.filesystem-0')]), [])
})

test.serial('encfs release prints the released JWK and tells whether it opens an image', async (t) => {
  const bearer = (await s.authority.issue(s.akv.audience, 'operator')).token
  const common = ['release', '--maa', s.maa.endpoint, '--akv', s.akv.endpoint, '--access-token', bearer, '--attestation', 'simulated', '--simulated-state', `${s.dir}/snp`]
  const r = await runEncfs([...common, '--kid', 'oct-key', '--check-image', oct.image], { env: sidecarEnv() })
  t.is(r.code, 0, r.stderr)
  t.is((JSON.parse(r.stdout) as { k: string; kty: string }).k, octKey.toString('base64url'))
  t.regex(r.stderr, /the released key opens keyslot 0 of the image/)
  const rsaRun = await runEncfs([...common, '--kid', 'rsa-key', '--check-image', derived.image, '--salt', salt, '--label', 'Model Key'], { env: sidecarEnv() })
  t.is(rsaRun.code, 0, rsaRun.stderr)
  t.is((JSON.parse(rsaRun.stdout) as { kty: string }).kty, 'RSA')
  const wrongLabel = await runEncfs([...common, '--kid', 'rsa-key', '--check-image', derived.image, '--salt', salt], { env: sidecarEnv() })
  t.not(wrongLabel.code, 0)
  t.regex(wrongLabel.stderr, /\[LUKS_WRONG_KEY\]/)
})

test.serial('encfs emulators starts everything, writes the CA and endpoints, and stops on SIGTERM', async (t) => {
  const dir = await e2e.tempDir('encfs-emu-')
  const child = spawn(process.execPath, [ENCFS_JS, 'emulators', '--dir', dir, '--simulated-state', `${s.dir}/snp`], { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  const exited = new Promise<number | null>((resolve) => child.on('exit', resolve))
  // The endpoints are printed once everything listens: wait for that line (or the exit).
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString()
      if (out.includes('NODE_EXTRA_CA_CERTS')) resolve()
    })
    void exited.then((code) => reject(new Error(`encfs emulators exited with ${code} before printing its endpoints: ${out}`)))
  })
  const endpoints = JSON.parse(await readFile(path.join(dir, 'endpoints.json'), 'utf8')) as { maa: string; akv: string; managedHsm: string; imds: string; caFile: string }
  t.regex(endpoints.maa, /^127\.0\.0\.1:\d+$/)
  t.regex(await readFile(endpoints.caFile, 'utf8'), /BEGIN CERTIFICATE/)
  const res = await request(`https://${endpoints.maa}/certs`, { what: 'test', ca: [await readFile(endpoints.caFile, 'utf8')] })
  t.is(res.status, 200)
  child.kill('SIGTERM')
  t.is(await exited, 0)
})
