// remotefs on an Azure confidential VM, without Azure: the vTPM is swtpm (provisioned by the
// harness, its paravisor refreshing the HCL report from the simulated SNP chip), MAA's guest
// attestation and the vault are the emulators, the image a real cryptsetup image in Azurite.
import test from 'ava'
import { writeFile } from 'node:fs/promises'
import { randomBytes } from 'node:crypto'
import path from 'node:path'
import { E2eFixture, sidecarArgs, stopSidecar, waitReady, readFromChild, leftovers, runEncfs, freePort } from '../helpers/e2e.js'
import type { SkrStack } from '../helpers/skr-stack.js'
import { CVM_RELEASE_CLAIMS, type SwtpmVtpm } from '../helpers/swtpm.js'

const e2e = new E2eFixture(test)
let s: SkrStack
let vtpm: SwtpmVtpm
let caFile: string
let emptyContext: string
const key = randomBytes(32)
let blobUrl: string

test.before(async () => {
  s = await e2e.skrStack()
  vtpm = await e2e.vtpm(s)
  caFile = path.join(s.dir, 'emulator-ca.pem')
  await writeFile(caFile, s.ca.join(''))
  emptyContext = await e2e.tempDir('encfs-ctx-')
  await s.importKey('cvm-key', key, CVM_RELEASE_CLAIMS)
  const img = await e2e.image({ key, files: { 'cvm.txt': 'released to a confidential VM\n' } })
  blobUrl = (await e2e.upload(img.image, { kind: 'block' })).sasUrl
})

// On a CVM the VCEK chain comes from the host's THIM endpoint; here the simulated chip's, given as the platform would.
const env = async () => ({
  NODE_EXTRA_CA_CERTS: caFile,
  UVM_SECURITY_CONTEXT_DIR: emptyContext,
  UVM_HOST_AMD_CERTIFICATE: Buffer.from(JSON.stringify(await s.snp.thimCerts())).toString('base64'),
  EncfsVaultHosts: s.vaultHostsEnv,
})

test.serial('remotefs --attestation vtpm gets the key released through the vTPM and mounts the image; SIGTERM leaves nothing', async (t) => {
  const ws = await e2e.workspace()
  const mp = path.join(ws.parent, 'cvm')
  const bearer = (await s.authority.issue(s.akv.audience, 'pod')).token
  const refreshes = vtpm.paravisor.refreshes
  const sidecar = await e2e.sidecar(
    sidecarArgs([
      { mount_point: mp, azure_url: blobUrl, key: { kid: 'cvm-key', authority: { endpoint: s.maa.endpoint }, akv: { endpoint: s.akv.endpoint, bearer_token: bearer } } },
    ]),
    { args: ['--attestation', 'vtpm', '--tpm-tcti', vtpm.tcti], env: await env() },
  )
  await waitReady(sidecar, [mp])
  t.is((await readFromChild(path.join(mp, 'cvm.txt'))).toString(), 'released to a confidential VM\n')
  t.is(vtpm.paravisor.refreshes, refreshes + 1)
  const log = await sidecar.log()
  t.regex(log, /key release: attesting with MAA \(AzureGuest\)/)
  t.regex(log, /key release: unwrapping with the vTPM/)
  t.notRegex(log, new RegExp(key.toString('hex')))
  t.is(await stopSidecar(sidecar), 0)
  t.deepEqual(await leftovers(sidecar.runtimeDir, [path.join(ws.parent, '.filesystem-0')]), [])
})

test.serial('a TPM that cannot be reached stops remotefs before anything is mounted, naming --tpm-tcti', async (t) => {
  const ws = await e2e.workspace()
  const mp = path.join(ws.parent, 'none')
  const closed = `swtpm:host=127.0.0.1,port=${await freePort()}`
  const end = await e2e.runToEnd(
    sidecarArgs([{ mount_point: mp, azure_url: blobUrl, key: { kid: 'cvm-key', authority: { endpoint: s.maa.endpoint }, akv: { endpoint: s.akv.endpoint, bearer_token: 'x' } } }]),
    {
      args: ['--attestation', 'vtpm', '--tpm-tcti', closed],
      env: await env(),
    },
  )
  t.not(end.code, 0)
  t.regex(end.log + end.output, /cannot open the TPM at swtpm:host=127\.0\.0\.1.*set --tpm-tcti/)
  t.regex(end.log + end.output, /TPM_UNAVAILABLE/)
  t.deepEqual(await leftovers(end.runtimeDir, [path.join(ws.parent, '.filesystem-0')]), [])
})

test.serial('encfs report on the vTPM prints the fresh HCL report: the report data as user data, the binding holding, the AK', async (t) => {
  const r = await runEncfs(['report', '--attestation', 'vtpm', '--tpm-tcti', vtpm.tcti, '--report-data', 'c0ffee', '--format', 'text'])
  t.is(r.code, 0, r.stderr)
  t.regex(r.stdout, new RegExp(`^userData: c0ffee${'00'.repeat(61)}$`, 'm'))
  t.regex(r.stdout, /^binding\.holds: true$/m)
  t.regex(r.stdout, new RegExp(`^keys\\.HCLAkPub\\.n: ${vtpm.akPub.n}$`, 'm'))
  t.regex(r.stdout, /^snpReport\.reportData: [0-9a-f]{64}0{64}$/m)
  const hex = await runEncfs(['report', '--attestation', 'vtpm', '--tpm-tcti', vtpm.tcti, '--report-data', 'aa'])
  t.is(hex.code, 0, hex.stderr)
  const file = path.join(s.dir, 'hcl.hex')
  await writeFile(file, hex.stdout)
  const decoded = await runEncfs(['report', '--decode', file, '--format', 'json'])
  t.is(decoded.code, 0, decoded.stderr)
  const j = JSON.parse(decoded.stdout) as { binding: { holds: boolean }; userData: string }
  t.true(j.binding.holds)
  t.is(j.userData, `aa${'00'.repeat(63)}`)
})
