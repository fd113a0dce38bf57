import test from 'ava'
import { mkdtemp, rm, writeFile, readdir } from 'node:fs/promises'
import { createHash } from 'node:crypto'
import os from 'node:os'
import path from 'node:path'
import { pino } from 'pino'
import { loadAddon, deviceProvider, deviceError } from '../../src/attestation/providers/device.js'
import { tsmProvider } from '../../src/attestation/providers/tsm.js'
import { selectProvider } from '../../src/attestation/providers/select.js'
import { simulatedProvider } from '../../src/attestation/providers/simulated.js'
import { verifyReport } from '../../src/attestation/verify.js'
import { parseReport } from '../../src/attestation/report.js'
import { thimChainPem } from '../../src/attestation/thim.js'
import { maaReportData } from '../../src/attestation/report-data.js'

let tmp: string
test.before(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'encfs-attest-'))
})
test.after.always(async () => {
  await rm(tmp, { recursive: true, force: true })
})

test('the addon is built with the kernel uapi ABI: ioctl numbers, struct sizes and offsets', (t) => {
  const l = loadAddon().layout()
  t.is(l.SNP_GET_REPORT, 0xc0205300)
  t.is(l.SEV_SNP_GUEST_MSG_REPORT, 0xc0285301)
  t.is(l['snp_guest_request_ioctl.size'], 32)
  t.deepEqual(
    [l['snp_guest_request_ioctl.msg_version'], l['snp_guest_request_ioctl.req_data'], l['snp_guest_request_ioctl.resp_data'], l['snp_guest_request_ioctl.exitinfo2']],
    [0, 8, 16, 24],
  )
  t.is(l['snp_report_req.size'], 96)
  t.is(l['snp_report_resp.size'], 4000)
  t.is(l['sev_snp_guest_request.size'], 40)
  t.deepEqual(
    [
      l['sev_snp_guest_request.request_len'],
      l['sev_snp_guest_request.request_uaddr'],
      l['sev_snp_guest_request.response_len'],
      l['sev_snp_guest_request.response_uaddr'],
      l['sev_snp_guest_request.error'],
    ],
    [4, 8, 16, 24, 32],
  )
  t.is(l.reportOffset, 0x20)
  t.is(l.reportSize, 1184)
})

test('a device that does not exist, and one that is not the SNP driver, give errors that say so', async (t) => {
  const missing = await t.throwsAsync(deviceProvider('sev-guest', path.join(tmp, 'no-sev-guest')).getReport(Buffer.alloc(64)))
  t.is((missing as { code?: string }).code, 'ATTEST_DEVICE_MISSING')
  t.regex(missing!.message, /does not exist: this is not an SEV-SNP guest/)
  // /dev/null opens but answers the ioctl with ENOTTY, as a guest whose VMPCK was wiped does.
  for (const kind of ['sev-guest', 'sev'] as const) {
    const wrong = await t.throwsAsync(deviceProvider(kind, '/dev/null').getReport(Buffer.alloc(64)))
    t.is((wrong as { code?: string }).code, 'ATTEST_DEVICE_FAILED')
    t.regex(wrong!.message, /ENOTTY/)
  }
  await t.throwsAsync(deviceProvider('sev-guest', '/dev/null').getReport(Buffer.alloc(65)), { instanceOf: RangeError })
})

test('errno, firmware and host error codes are named', (t) => {
  const base = { name: 'Error', message: '', syscall: 'ioctl', status: 0, fwError: 0, vmmError: 0 }
  t.is(deviceError({ ...base, errno: 13, syscall: 'open' }, 'sev-guest', '/dev/sev-guest').code, 'ATTEST_DEVICE_PERMISSION')
  t.regex(deviceError({ ...base, errno: 13, syscall: 'open' }, 'sev-guest', '/dev/sev-guest').message, /privileged|device mapped/)
  const fw = deviceError({ ...base, errno: 5, fwError: 0x16, vmmError: 0 }, 'sev-guest', '/dev/sev-guest')
  t.is(fw.code, 'ATTEST_DEVICE_FAILED')
  t.regex(fw.message, /EIO firmware error 0x16 INVALID_PARAM/)
  t.regex(deviceError({ ...base, errno: 5, vmmError: 2 }, 'sev-guest', '/dev/sev-guest').message, /host error BUSY/)
  const status = deviceError({ ...base, errno: 0, status: 0x27 }, 'sev', '/dev/sev')
  t.is(status.code, 'ATTEST_FIRMWARE_ERROR')
  t.regex(status.message, /status 0x27 INVALID_KEY/)
})

test('configfs-tsm: a missing tree and a non-SNP provider are refused, and the request directory is removed', async (t) => {
  const err = await t.throwsAsync(tsmProvider(path.join(tmp, 'no-tsm')).getReport(Buffer.alloc(64)))
  t.is((err as { code?: string }).code, 'ATTEST_DEVICE_MISSING')
  t.regex(err!.message, /configfs-tsm/)
  const root = await mkdtemp(path.join(tmp, 'tsm-'))
  const notSnp = await t.throwsAsync(tsmProvider(root).getReport(Buffer.alloc(64)))
  t.is((notSnp as { code?: string }).code, 'ATTEST_DEVICE_FAILED')
  t.deepEqual(await readdir(root), [], 'request directory removed')
})

test('auto takes the first source present, in the order sev-guest, sev, tsm, and never simulates', async (t) => {
  const none = { sevGuest: path.join(tmp, 'a'), sev: path.join(tmp, 'b'), tsm: path.join(tmp, 'c') }
  const err = await t.throwsAsync(selectProvider('auto', { paths: none }))
  t.is((err as { code?: string }).code, 'ATTEST_NO_PROVIDER')
  for (const p of Object.values(none)) t.true(err!.message.includes(p), `names ${p}`)
  t.regex(err!.message, /--attestation simulated/)
  await writeFile(none.sev, '')
  t.is((await selectProvider('auto', { paths: none })).name, 'sev')
  await writeFile(none.sevGuest, '')
  t.is((await selectProvider('auto', { paths: none })).name, 'sev-guest')
  await t.throwsAsync(selectProvider('fake'), { message: /unknown attestation mode "fake"/ })
})

test('simulated reports have the real layout and verify against the simulated AMD-style chain', async (t) => {
  const lines: string[] = []
  const logger = pino(
    { level: 'warn' },
    {
      write: (s: string) => {
        lines.push(s)
      },
    },
  )
  const stateDir = path.join(tmp, 'sim')
  const policyHash = createHash('sha256').update('package policy').digest()
  // Two providers racing to create the chip end up with one chain.
  const [a, b] = [simulatedProvider({ stateDir, hostData: policyHash, logger }), simulatedProvider({ stateDir, hostData: policyHash, logger })]
  const runtimeData = Buffer.from('{"keys":[]}')
  const [ra, rb] = await Promise.all([a.getReport(maaReportData(runtimeData)), b.getReport(Buffer.from('short'))])
  const certs = await a.thimCerts()
  t.is(thimChainPem(certs), thimChainPem(await b.thimCerts()))
  const { report, chain } = verifyReport(ra, { chain: thimChainPem(certs), reportData: maaReportData(runtimeData), hostData: policyHash })
  t.regex(chain.ark.subject, /ARK-Milan/)
  t.regex(chain.vcek.subject, /SEV-VCEK/)
  t.is(report.version, 3)
  t.is(report.reportedTcb.hex, certs.tcbm)
  t.is(report.vmpl, 0)
  t.false(report.policyFlags.debugAllowed)
  t.is(parseReport(rb).reportData, Buffer.concat([Buffer.from('short'), Buffer.alloc(59)]).toString('hex'))
  t.notThrows(() => verifyReport(rb, { chain: thimChainPem(certs) }))
  t.true(
    lines.some((l) => l.includes('SIMULATED SEV-SNP report')),
    'every use warns',
  )
  // A later provider on the same state directory keeps the chip.
  const again = simulatedProvider({ stateDir })
  t.is(parseReport(await again.getReport(Buffer.alloc(0))).chipId, report.chipId)
  t.deepEqual(
    (await readdir(path.dirname(stateDir))).filter((f) => f.includes('.tmp-')),
    [],
    'no temporary directories left',
  )
})
