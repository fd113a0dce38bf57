// One evidence path for /attest/combined, /attest/maa and key release: when the TCB moves between
// the report and the certificate fetch, each retries once with a fresh report, as Go's key release does.
import test from 'ava'
import { createServer, type Server } from 'node:http'
import { randomBytes } from 'node:crypto'
import { startSkrStack, type SkrStack } from '../helpers/skr-stack.js'
import { buildApi } from '../../src/api/server.js'
import { ServiceStatus } from '../../src/api/status.js'
import { AttestationContext } from '../../src/attestation/context.js'
import { parseReport } from '../../src/attestation/report.js'
import type { ReportProvider } from '../../src/attestation/providers/provider.js'
import { releaseKey } from '../../src/skr/release.js'
import { Collateral } from '../../src/attestation/collateral.js'
import { silentLogger } from '../../src/log/logger.js'
import { hasCode } from '../../src/errors/encfs-error.js'
import { evidence } from '../../src/attestation/evidence.js'
import { vtpmProvider } from '../../src/attestation/providers/vtpm.js'

let s: SkrStack
let thim: Server
let thimEndpoint: string
let thimRequests = 0

test.before(async () => {
  s = await startSkrStack()
  // A local THIM endpoint that serves the chip's real chain (TCB 7308000000000003).
  const certs = await s.snp.thimCerts()
  thim = createServer((_req, res) => {
    thimRequests++
    res.setHeader('content-type', 'application/json')
    res.end(JSON.stringify(certs))
  })
  await new Promise<void>((resolve) => thim.listen(0, '127.0.0.1', resolve))
  thimEndpoint = `127.0.0.1:${(thim.address() as { port: number }).port}/metadata/THIM/amd/certification`
})
test.after.always(async () => {
  await new Promise((resolve) => thim?.close(resolve))
  await s?.stop()
})

/**
 * The first report claims a TCB (0x...1111) that no certificate endorses, as after a firmware
 * update that happened while the chain was fetched; the next reports are the chip's own.
 */
function movingTcb(): ReportProvider & { reports: Buffer[] } {
  const reports: Buffer[] = []
  return {
    name: 'simulated',
    location: 'test',
    reports,
    async getReport(data: Buffer) {
      const report = await s.snp.getReport(data)
      if (reports.length === 0) report.writeBigUInt64LE(0x1111n, 0x180)
      reports.push(report)
      return report
    },
  }
}

function api(provider: ReportProvider) {
  // No host certificate: the chain for the moved TCB comes from the certcache (local THIM).
  const uvm = { ...s.uvm, hostAmdCertificate: undefined }
  const attestation = new AttestationContext({ attestation: 'simulated', provider, uvm, certcache: { endpoint_type: 'LocalTHIM', endpoint: thimEndpoint }, logger: silentLogger })
  return buildApi({ status: new ServiceStatus(), attestation, logger: silentLogger, ca: s.ca, vaultHosts: s.vaultHosts })
}

test.serial('/attest/combined retries with a fresh report and returns the report the chain endorses', async (t) => {
  const provider = movingTcb()
  const app = api(provider)
  t.teardown(() => app.close())
  const res = await app.inject({ method: 'POST', url: '/attest/combined', payload: { runtime_data: Buffer.from('{}').toString('base64') } })
  t.is(res.statusCode, 200, res.body)
  t.is(provider.reports.length, 2, 'one fresh report after the mismatch')
  const body = res.json<{ evidence: string; endorsed_tcb: string }>()
  t.deepEqual(Buffer.from(body.evidence, 'base64'), provider.reports[1], 'the matched report, not the first one (Go returned the first)')
  t.is(body.endorsed_tcb, '7308000000000003')
  t.is(parseReport(Buffer.from(body.evidence, 'base64')).reportedTcb.value, 0x7308000000000003n)
})

test.serial('/attest/maa retries with a fresh report, and MAA accepts it', async (t) => {
  const provider = movingTcb()
  const app = api(provider)
  t.teardown(() => app.close())
  const before = thimRequests
  const res = await app.inject({ method: 'POST', url: '/attest/maa', payload: { maa_endpoint: s.maa.endpoint, runtime_data: Buffer.from('{"n":1}').toString('base64') } })
  t.is(res.statusCode, 200, res.body)
  t.truthy(res.json<{ token: string }>().token)
  t.is(provider.reports.length, 2)
  t.true(thimRequests > before, 'the chain came from the certcache')
})

test.serial('key release takes the same path: a moved TCB costs one more report, not the release', async (t) => {
  const bearer = (await s.authority.issue(s.akv.audience, 'operator')).token
  const key = randomBytes(32)
  await s.importKey('moving-tcb', key)
  const provider = movingTcb()
  const uvm = { ...s.uvm, hostAmdCertificate: undefined }
  const collateral = new Collateral({ uvm, certcache: { endpoint_type: 'LocalTHIM', endpoint: thimEndpoint } })
  const released = await releaseKey({
    maaEndpoint: s.maa.endpoint,
    akvEndpoint: s.akv.endpoint,
    kid: 'moving-tcb',
    accessToken: bearer,
    provider,
    collateral,
    uvm,
    ca: s.ca,
    vaultHosts: s.vaultHosts,
  })
  t.deepEqual(released.material, key)
  t.is(provider.reports.length, 2)
})

test.serial('-allowTestingMismatchedTCB: the host certificate matches no report, so the chain comes from the certcache; without it the host chain serves', async (t) => {
  const report = parseReport(await s.snp.getReport(Buffer.alloc(64)))
  const certcache = { endpoint_type: 'LocalTHIM', endpoint: thimEndpoint } as const
  const before = thimRequests
  await new Collateral({ uvm: s.uvm, certcache }).chainFor(report)
  t.is(thimRequests, before, 'the host certificate matched')
  const chain = await new Collateral({ uvm: s.uvm, certcache, testingMismatchedTcb: true }).chainFor(report)
  t.is(thimRequests, before + 1, 'fetched from the certcache')
  t.is(chain.tcbm, report.reportedTcb.value)
})

test('on a confidential VM the runtime-data endpoints refuse at once, saying key release is the way, without touching the TPM', async (t) => {
  // Nothing listens on port 1: any TPM command would fail with TPM_UNAVAILABLE instead.
  const provider = vtpmProvider('swtpm:host=127.0.0.1,port=1')
  const err = await t.throwsAsync(evidence({ provider, collateral: new Collateral({}) }, Buffer.alloc(64)))
  t.true(hasCode(err, 'ATTEST_VTPM_UNSUPPORTED'), err?.message)
  t.regex(err!.message, /key release works there \(\/key\/release, remotefs\)/)
})
