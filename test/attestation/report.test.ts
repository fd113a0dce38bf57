// The report parser and verifier against the Go project's genuine reports (spec/testdata/snp).
import test from 'ava'
import { readFileSync } from 'node:fs'
import { createHash, X509Certificate } from 'node:crypto'
import { parseReport, decodeReportInput, REPORT_SIZE } from '../../src/attestation/report.js'
import { verifyReport } from '../../src/attestation/verify.js'
import { parsePemChain } from '../../src/attestation/cert-chain.js'
import path from 'node:path'
import { VECTORS } from '../helpers/vectors.js'

const DATA = VECTORS
const read = (rel: string) => readFileSync(path.join(DATA, rel))
// `any`: test vectors, compared field by field (noExplicitAny is off in test/, see docs/code-style.md)
const fields = JSON.parse(read('snp/report_fields.json').toString()) as Record<string, { fields: Record<string, any>; go_test_asserted_values_Test_SNP?: Record<string, any> }>
const genuine = read('snp/snp_report.bin')
const genuineChain = read('snp/uvm_host_amd_certificate.pem').toString()
const v3 = read('snp/snp_report_v3_milan.bin')
const v3Chain = read('snp/snp_report_v3_milan.azcache_chain.pem').toString()
// Verify as of a day both genuine chains were valid (the v3 VCEK was issued in January 2025).
const at = new Date('2025-06-01T00:00:00Z')

for (const [file, raw] of [
  ['snp_report.bin', genuine],
  ['snp_report_v3_milan.bin', v3],
] as const) {
  test(`${file}: every field matches the values the Go tests and the ABI give`, (t) => {
    const f = fields[file]!.fields
    const r = parseReport(raw)
    t.is(r.version, f.version)
    t.is(r.guestSvn, f.guest_svn)
    t.is(r.policy, BigInt(f.policy as number))
    t.is(r.familyId, f.family_id)
    t.is(r.imageId, f.image_id)
    t.is(r.vmpl, f.vmpl)
    t.is(r.signatureAlgo, f.signature_algo)
    t.is(r.currentTcb.hex, f.current_tcb_hex)
    t.is(r.currentTcb.value.toString(), f.current_tcb_uint64)
    t.is(r.platformInfo, BigInt(f.platform_info as number))
    t.is(r.signerInfo.raw, f.signer_info_0x48)
    t.is(r.signerInfo.signingKey, 'vcek')
    t.is(r.reportData, f.report_data)
    t.is(r.measurement, f.measurement)
    t.is(r.hostData, f.host_data)
    t.is(r.idKeyDigest, f.id_key_digest)
    t.is(r.authorKeyDigest, f.author_key_digest)
    t.is(r.reportId, f.report_id)
    t.is(r.reportIdMa, f.report_id_ma)
    t.is(r.reportedTcb.hex, f.reported_tcb_hex)
    t.is(r.chipId, f.chip_id)
    t.is(r.committedTcb.hex, f.committed_tcb_hex)
    t.is(r.launchTcb.hex, f.launch_tcb_hex)
    const parts = f.reported_tcb_parts_milan as { blSPL: number; teeSPL: number; snpSPL: number; ucodeSPL: number }
    t.deepEqual([r.reportedTcb.bootloader, r.reportedTcb.tee, r.reportedTcb.snp, r.reportedTcb.microcode], [parts.blSPL, parts.teeSPL, parts.snpSPL, parts.ucodeSPL])
    const ver = Buffer.from(f.current_build_minor_major_0x1e8 as string, 'hex')
    t.deepEqual(r.currentVersion, { build: ver[0], minor: ver[1], major: ver[2] })
    t.is(r.signature.r, f.signature_r_le_72)
    t.is(r.signature.s, f.signature_s_le_72)
    const cpuid = f.cpuid_fam_mod_step_0x188 as string
    if (r.version >= 3) t.deepEqual(r.cpuid, { family: parseInt(cpuid.slice(0, 2), 16), model: parseInt(cpuid.slice(2, 4), 16), stepping: parseInt(cpuid.slice(4, 6), 16) })
    else t.is(r.cpuid, undefined)
    t.is(r.policyFlags.debugAllowed, false)
    t.is(r.policyFlags.smtAllowed, true)
  })
}

test("the Go fake-report template parses to the values Go's Test_SNP asserts", (t) => {
  const go = fields['go_fake_report_template.bin']!.go_test_asserted_values_Test_SNP!
  const r = parseReport(read('snp/go_fake_report_template.bin'))
  t.is(r.version, go.Version)
  t.is(r.guestSvn, go.GuestSvn)
  t.is(r.policy, BigInt(go.Policy as number))
  t.is(r.familyId, go.FamilyID)
  t.is(r.currentTcb.value.toString(), go.PlatformVersion)
  t.is(r.reportedTcb.value.toString(), go.ReportedTCB)
  t.is(r.committedTcb.value, 0n)
  t.is(r.reportData.slice(0, 64), createHash('sha256').update(read('keys/wrapping_test_key.jwks.json')).digest('hex'))
})

test('a report of the wrong size is refused the way Go words it, hex input is decoded', (t) => {
  t.throws(() => parseReport(Buffer.alloc(4)), { message: /invalid SNP report size: 4 bytes/ })
  t.deepEqual(decodeReportInput(Buffer.from(`${genuine.toString('hex')}\n`)), genuine)
  t.deepEqual(decodeReportInput(genuine), genuine)
  t.throws(() => decodeReportInput(Buffer.from('abcd')), { message: /neither 1184 binary bytes nor 2368 hex digits/ })
  t.is(REPORT_SIZE, 1184)
})

test('both genuine reports verify: signature with the VCEK, VCEK <- ASK <- ARK, report_data and host_data', (t) => {
  const runtimeData = read('snp/runtime_data.json')
  const policy = Buffer.from(read('snp/uvm_security_policy.base64').toString().trim(), 'base64')
  const { report, chain } = verifyReport(genuine, {
    chain: genuineChain,
    at,
    reportData: Buffer.concat([createHash('sha256').update(runtimeData).digest(), Buffer.alloc(32)]),
    hostData: createHash('sha256').update(policy).digest(),
  })
  t.regex(chain.ark.subject, /ARK-Milan/)
  t.is(report.hostData, 'cadd74f71ebb8fbf9782baab649612520f3c416bc5ce9ac768808ddc8d9b031c')
  t.notThrows(() => verifyReport(v3, { chain: v3Chain, at }))
})

test("tampering is caught: one flipped bit, another chip's VCEK, a wrong expected value, an untrusted root, expiry", (t) => {
  for (const offset of [0x00, 0x50, 0xc0, 0x29f]) {
    const bad = Buffer.from(genuine)
    bad[offset] = bad[offset]! ^ 1
    t.throws(() => verifyReport(bad, { chain: genuineChain, at }), { code: 'ATTEST_REPORT_SIGNATURE' } as never, `bit flipped at ${offset}`)
  }
  const badSig = Buffer.from(genuine)
  badSig[0x2a0] = badSig[0x2a0]! ^ 1
  t.throws(() => verifyReport(badSig, { chain: genuineChain, at }), { code: 'ATTEST_REPORT_SIGNATURE' } as never)
  // The v3 report's chain is a real AMD chain too, for another chip: its VCEK must not verify this report.
  t.throws(() => verifyReport(genuine, { chain: v3Chain, at }), { code: 'ATTEST_REPORT_SIGNATURE' } as never)
  t.throws(() => verifyReport(genuine, { chain: genuineChain, at, hostData: Buffer.alloc(32) }), { code: 'ATTEST_HOST_DATA_MISMATCH' } as never)
  t.throws(() => verifyReport(genuine, { chain: genuineChain, at, reportData: Buffer.alloc(32) }), { code: 'ATTEST_REPORT_DATA_MISMATCH', message: /other runtime data/ } as never)
  const certs = parsePemChain(genuineChain)
  const swapped = [certs[0]!, certs[2]!, certs[1]!]
  t.throws(() => verifyReport(genuine, { chain: swapped, at }), { code: 'ATTEST_CHAIN_INVALID' } as never)
  const vectors = JSON.parse(read('akv/x5c_chain_vectors.json').toString()) as { untrusted_root: { cert: string } }
  const otherRoot = new X509Certificate(Buffer.from(vectors.untrusted_root.cert, 'base64'))
  t.throws(() => verifyReport(genuine, { chain: genuineChain, at, trustedArks: [otherRoot] }), { code: 'ATTEST_CHAIN_UNTRUSTED' } as never)
  t.notThrows(() => verifyReport(genuine, { chain: genuineChain, at, trustedArks: [certs[2]!] }))
  t.throws(() => verifyReport(genuine, { chain: genuineChain, at: new Date('2000-01-01') }), { code: 'ATTEST_CHAIN_EXPIRED' } as never)
  t.throws(() => verifyReport(genuine.subarray(0, 1000), { chain: genuineChain, at }), { code: 'ATTEST_REPORT_SIZE' } as never)
})
