// A start-up storm: 20 remotefs processes start at once and release their keys by SKR while
// MAA and Key Vault (the emulators, behind a fault-injecting TLS proxy) answer 429 to a third of
// the requests. All mount, within the bound documented in docs/startup-storms.md, having waited
// Retry-After (with jitter) where it was given. Kept light for 2 cores: one small image read from
// a local file, userspace unlock, the cheapest KDF.
import test from 'ava'
import { writeFile } from 'node:fs/promises'
import { randomBytes } from 'node:crypto'
import path from 'node:path'
import { E2eFixture, stopSidecar, waitReady, readFromChild, leftovers, type Sidecar, type TestImage } from '../helpers/e2e.js'
import type { SkrStack } from '../helpers/skr-stack.js'
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js'
import { createServerPki } from '../../src/emulators/pki.js'

const PODS = 20
/** Measured on the 2-core development VM (docs/startup-storms.md): about 25-45 s; the bound leaves room for a loaded machine. */
const BOUND_MS = 120_000

const e2e = new E2eFixture(test)
let s: SkrStack
let maa: FaultProxy
let akv: FaultProxy
let img: TestImage
let caFile: string
let emptyContext: string
const octKey = randomBytes(32)

test.before(async () => {
  s = await e2e.skrStack()
  const pki = await createServerPki(['127.0.0.1'], 'encfs storm proxy CA')
  const throttle = { every: 3, faults: ['429-retry-after', '429'] as const }
  // The proxy stands where MAA's name leads: it answers with MAA's own certificate, and MAA's tokens name it as their issuer.
  maa = await startFaultProxy({ port: Number(s.maa.endpoint.split(':')[1]), tls: { pki: s.maa.pki, targetCa: s.maa.caPem } }, { ...throttle, faults: [...throttle.faults] })
  s.maa.serveAs(maa.endpoint)
  akv = await startFaultProxy({ port: Number(s.akv.endpoint.split(':')[1]), tls: { pki, targetCa: s.akv.caPem } }, { ...throttle, faults: [...throttle.faults] })
  e2e.defer(() => maa.stop())
  e2e.defer(() => akv.stop())
  caFile = path.join(s.dir, 'storm-ca.pem')
  await writeFile(caFile, [...s.ca, pki.caPem].join(''))
  emptyContext = await e2e.tempDir('encfs-ctx-')
  await s.importKey('storm-key', octKey)
  img = await e2e.image({ key: octKey, files: { 'hello.txt': 'mounted in a storm\n' } })
})

test('20 remotefs starting at once against a throttling MAA and Key Vault all mount, waiting Retry-After with jitter', async (t) => {
  const bearer = (await s.authority.issue(s.akv.audience, 'pod')).token
  const env = {
    NODE_EXTRA_CA_CERTS: caFile,
    UVM_SECURITY_CONTEXT_DIR: emptyContext,
    UVM_SECURITY_POLICY: s.policyBase64,
    UVM_REFERENCE_INFO: s.uvm.referenceInfo,
    UVM_HOST_AMD_CERTIFICATE: Buffer.from(JSON.stringify(s.uvm.hostAmdCertificate)).toString('base64'),
    // The throttling proxy in front of the Key Vault emulator is the vault the operator lists.
    EncfsVaultHosts: akv.endpoint,
  }
  // Each pod in its own directory, as each pod has its own volume.
  const mountPoints = await Promise.all(Array.from({ length: PODS }, async (_, i) => path.join((await e2e.workspace()).parent, `pod${i}`)))
  const started = Date.now()
  const pods: Sidecar[] = await Promise.all(
    mountPoints.map((mp) =>
      e2e.sidecar(
        [
          {
            mount_point: mp,
            azure_url: `file://${img.image}`,
            unlock: 'userspace',
            key: { kid: 'storm-key', kty: 'oct-HSM', authority: { endpoint: maa.endpoint }, akv: { endpoint: akv.endpoint, bearer_token: bearer } },
          },
        ],
        { args: ['--attestation', 'simulated', '--simulated-state', `${s.dir}/snp`], env },
      ),
    ),
  )
  await Promise.all(pods.map((p, i) => waitReady(p, [mountPoints[i]!], BOUND_MS)))
  const took = Date.now() - started
  t.log(`${PODS} pods ready in ${took} ms; MAA ${JSON.stringify(maa.counts)}, Key Vault ${JSON.stringify(akv.counts)}`)
  t.true(took < BOUND_MS, `all ready in ${took} ms`)
  for (const mp of mountPoints) t.is((await readFromChild(path.join(mp, 'hello.txt'))).toString(), 'mounted in a storm\n')

  // Throttled, and the answers were honoured: Retry-After waited for, with jitter on top.
  t.true(maa.counts['429-retry-after'] + maa.counts['429'] > 0 && akv.counts['429-retry-after'] + akv.counts['429'] > 0)
  const waits = (await Promise.all(pods.map((p) => p.log())))
    .flatMap((log) => log.split('\n').filter((l) => l.includes('"retryAfterMs":1000') && l.includes('"delayMs"')))
    .map((l) => (JSON.parse(l) as { delayMs: number }).delayMs)
  t.true(waits.length > 0, 'some retries came after a Retry-After')
  t.true(
    waits.every((ms) => ms >= 1000),
    `every wait after Retry-After: 1 was at least 1 s: ${waits.join(', ')}`,
  )
  t.true(new Set(waits).size > Math.min(3, waits.length - 1), `the waits are jittered: ${waits.join(', ')}`)

  const codes = await Promise.all(pods.map((p) => stopSidecar(p)))
  t.deepEqual(
    codes,
    pods.map(() => 0),
  )
  for (const [i, p] of pods.entries()) t.deepEqual(await leftovers(p.runtimeDir, [path.join(path.dirname(mountPoints[i]!), '.filesystem-0')]), [])
})
