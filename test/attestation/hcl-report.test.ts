// The HCL report of Azure confidential VMs, on real reports from Azure hardware
// (test/vectors/cvm, from kinvolk/azure-cvm-tooling; docs/test-vectors.md#cvm).
import test from 'ava'
import { readFileSync } from 'node:fs'
import { createHash } from 'node:crypto'
import { vector } from '../helpers/vectors.js'
import { checkHclBinding, parseHclReport, VARIABLE_DATA_OFFSET } from '../../src/attestation/hcl-report.js'
import { parseReport } from '../../src/attestation/report.js'
import { hasCode } from '../../src/errors/encfs-error.js'

const snp = () => readFileSync(vector('cvm', 'hcl-report-snp.bin'))

test('the real SNP HCL report parses: header, request data, the SNP report, the AK in the variable data', (t) => {
  const h = parseHclReport(snp())
  t.deepEqual(h.header, { version: 1, reportSize: 1819, requestType: 2, status: 0 })
  t.deepEqual(h.requestData, { dataSize: 603, version: 1, reportType: 2, hashType: 1, variableDataSize: 583 })
  t.is(h.snpReport.length, 1184)
  t.is(parseReport(h.snpReport).version, 2)
  t.is(h.akPub?.kty, 'RSA')
  t.true(h.akPub?.n?.startsWith('tYVBpgABBOedWd2SNiT8o1I7FVCit2pDm2mr6B7b66_NNOlW3u42'))
  t.is(h.ekPub, undefined, 'this older paravisor put only the AK in the variable data')
  t.is(h.userData, undefined)
  t.deepEqual((h.runtime['vm-configuration'] as { vmUniqueId: string }).vmUniqueId, 'BAEFD3E1-184B-4C4C-AB88-0BDAD260505F')
})

test('the real report binds its variable data: REPORT_DATA starts with its SHA-256', (t) => {
  const h = parseHclReport(snp())
  t.true(h.binding.holds)
  t.is(h.binding.expected, createHash('sha256').update(h.variableData).digest('hex'))
  t.is(h.binding.expected, '1d0a466a9eed975e88f889f7aed4abc1c97e87c4f43e5e3478c9a4a5853cbd7d')
  t.notThrows(() => checkHclBinding(h))
})

test('one flipped byte of the variable data breaks the binding, and checkHclBinding refuses it', (t) => {
  const raw = snp()
  raw[VARIABLE_DATA_OFFSET + 80]! ^= 0x01 // inside the AK's modulus: still JSON, another key
  const h = parseHclReport(raw)
  t.false(h.binding.holds)
  const err = t.throws(() => checkHclBinding(h))
  t.true(hasCode(err, 'ATTEST_HCL_BINDING'))
  t.regex(err!.message, /not the sha256 of the variable data/)
  // A flip that breaks the JSON is refused before any binding is looked at.
  const broken = snp()
  broken[VARIABLE_DATA_OFFSET + 582]! ^= 0x01
  t.true(
    hasCode(
      t.throws(() => parseHclReport(broken)),
      'ATTEST_HCL_INVALID',
    ),
  )
})

test('a TDX HCL report (report type 4) is refused with the type named', (t) => {
  const err = t.throws(() => parseHclReport(readFileSync(vector('cvm', 'hcl-report-tdx.bin'))))
  t.true(hasCode(err, 'ATTEST_HCL_INVALID'))
  t.regex(err!.message, /report type 4 \(TDX\) is not an SEV-SNP report/)
})

test('malformed reports are refused naming what is wrong', (t) => {
  const at = (off: number, v: number) => (b: Buffer) => {
    b.writeUInt32LE(v, off)
    return b
  }
  const cases: [string, (b: Buffer) => Buffer, RegExp][] = [
    ['truncated', (b) => b.subarray(0, 1000), /shorter than the 1236 bytes/],
    ['no signature', at(0, 0x58585858), /does not start with the signature HCLA/],
    ['unknown hash type', at(1216 + 12, 9), /hash type 9 is not SHA-256/],
    ['variable data past the end', (b) => at(1216, 5020)(at(1216 + 16, 5000)(b)), /runs past the end/],
    ['inconsistent request size', at(1216, 42), /the request data says 42 bytes/],
    ['report size too small', at(8, 1300), /report size 1300 does not cover/],
  ]
  for (const [name, mutate, message] of cases) {
    const err = t.throws(() => parseHclReport(mutate(snp()), 'the file'), undefined, name)
    t.true(hasCode(err, 'ATTEST_HCL_INVALID'), name)
    t.regex(err!.message, message, name)
    t.regex(err!.message, /^the file: /, name)
  }
})
