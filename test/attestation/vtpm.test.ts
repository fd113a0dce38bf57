// The vtpm evidence source on swtpm provisioned as an Azure confidential VM's vTPM (its paravisor
// refreshing the HCL report when user data is written), and auto's choice of it.
import test from 'ava'
import path from 'node:path'
import { E2eFixture, freePort } from '../helpers/e2e.js'
import type { SwtpmVtpm } from '../helpers/swtpm.js'
import { vtpmProvider } from '../../src/attestation/providers/vtpm.js'
import { selectProvider } from '../../src/attestation/providers/select.js'
import { parseReport } from '../../src/attestation/report.js'
import { hasCode } from '../../src/errors/encfs-error.js'

const e2e = new E2eFixture(test)
let vtpm: SwtpmVtpm
let none: string

test.before(async () => {
  vtpm = await e2e.vtpm(await e2e.skrStack())
  none = path.join(await e2e.tempDir('encfs-none-'), 'absent')
})

test.serial('the user data written comes back in a fresh HCL report whose SNP report binds its variable data', async (t) => {
  const p = vtpmProvider(vtpm.tcti)
  const before = vtpm.paravisor.refreshes
  for (const data of [Buffer.from('c0ffee', 'hex'), Buffer.alloc(64, 0xab)]) {
    const { hcl } = await p.hclReport(data)
    t.true(hcl.userData?.equals(Buffer.concat([data, Buffer.alloc(64 - data.length)])))
    t.true(hcl.binding.holds)
    t.is(hcl.akPub?.n, vtpm.akPub.n)
    t.is(parseReport(hcl.snpReport).reportData, `${hcl.binding.expected}${'0'.repeat(64)}`)
  }
  t.is(vtpm.paravisor.refreshes, before + 2)
  t.is((await p.getReport(Buffer.from('01', 'hex'))).length, 1184)
})

test.serial('a report the paravisor does not refresh is refused as stale after the timeout', async (t) => {
  // Straight to swtpm: nobody sees the user data written, as with a paravisor that never answers.
  const p = vtpmProvider(vtpm.directTcti, { refreshTimeoutMs: 300, pollMs: 50 })
  const err = await t.throwsAsync(p.hclReport(Buffer.from('5eed', 'hex')))
  t.true(hasCode(err, 'ATTEST_HCL_STALE'), err?.message)
  t.regex(err!.message, /still carries other user data 300 ms after writing NV index 0x01400002/)
})

test.serial('auto picks the vTPM where the TPM device holds an HCL report and there is no SEV-SNP device', async (t) => {
  const paths = { sevGuest: none, sev: none, tsm: none, tpmrm: vtpm.dir }
  const p = await selectProvider('auto', { paths, tpmTcti: vtpm.tcti })
  t.is(p.name, 'vtpm')
  t.is(p.location, vtpm.tcti)
  // A TPM without an HCL report (nothing listening here) is not a confidential VM: no provider.
  const err = await t.throwsAsync(selectProvider('auto', { paths, tpmTcti: `swtpm:host=127.0.0.1,port=${await freePort()}` }))
  t.true(hasCode(err, 'ATTEST_NO_PROVIDER'))
  t.regex(err!.message, new RegExp(`an HCL report in ${vtpm.dir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`))
})
