import test from 'ava'
import { mkdtemp, mkdir, writeFile, rm, copyFile } from 'node:fs/promises'
import { readFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { readUvmInformation, securityContextDir, KATA_SECURITY_CONTEXT_DIR } from '../../src/attestation/uvm-info.js'
import { parseHostAmdCertificate, parseTcbm, thimChainPem, thimAbsent } from '../../src/attestation/thim.js'
import { maaReportData, policyHostData } from '../../src/attestation/report-data.js'
import { parsePemChain } from '../../src/attestation/cert-chain.js'
import { VECTORS } from '../helpers/vectors.js'

const DATA = VECTORS
const CONTEXT = path.join(DATA, 'security-context')
const read = (rel: string) => readFileSync(path.join(DATA, rel), 'utf8')
const misc = JSON.parse(read('misc_vectors.json')) as { security_policy_digests: Record<string, string>; report_data_generation: Record<string, string> }

test('the security-context directory is read as the Go sidecar reads it', async (t) => {
  const info = await readUvmInformation({ env: { UVM_SECURITY_CONTEXT_DIR: CONTEXT } })
  t.is(info.source, 'security-context directory')
  t.is(info.directory, CONTEXT)
  t.is(info.referenceInfo, read('security-context/reference-info-base64').trim())
  t.is(Buffer.from(info.referenceInfo, 'base64').length, 10825)
  t.is(policyHostData(info.securityPolicy).toString('hex'), misc.security_policy_digests['security-context/security-policy-base64']!)
  t.truthy(info.hostAmdCertificate)
  t.false(thimAbsent(info.hostAmdCertificate))
  t.is(parsePemChain(thimChainPem(info.hostAmdCertificate!)).length, 3)
})

test('without reference info in the directory, the UVM_* environment variables are used', async (t) => {
  const empty = await mkdtemp(path.join(os.tmpdir(), 'encfs-secctx-'))
  t.teardown(() => rm(empty, { recursive: true, force: true }))
  const thimJson = read('snp/uvm_host_amd_certificate.json')
  const env = {
    UVM_SECURITY_CONTEXT_DIR: empty,
    UVM_SECURITY_POLICY: read('snp/uvm_security_policy.base64').trim(),
    UVM_REFERENCE_INFO: readFileSync(path.join(DATA, 'snp/body.uvm_reference_info.bin')).toString('base64'),
    UVM_HOST_AMD_CERTIFICATE: Buffer.from(thimJson).toString('base64'),
  }
  const info = await readUvmInformation({ env })
  t.is(info.source, 'environment')
  t.is(policyHostData(info.securityPolicy).toString('hex'), misc.security_policy_digests['snp/uvm_security_policy.base64']!)
  t.is(info.hostAmdCertificate?.tcbm, '7308000000000003')
  t.is(parseTcbm(info.hostAmdCertificate!.tcbm, 'THIM'), 0x7308000000000003n)
  t.is(info.hostAmdCertificate?.cacheControl, '86400')
  t.is(thimChainPem(info.hostAmdCertificate!), read('snp/uvm_host_amd_certificate.pem'))
})

test("a directory named security-context-* under the root is found; else Kata's default", async (t) => {
  const root = await mkdtemp(path.join(os.tmpdir(), 'encfs-root-'))
  t.teardown(() => rm(root, { recursive: true, force: true }))
  t.is(await securityContextDir({}, root), KATA_SECURITY_CONTEXT_DIR)
  await mkdir(path.join(root, 'security-context-b'))
  await mkdir(path.join(root, 'security-context-a'))
  t.is(await securityContextDir({}, root), path.join(root, 'security-context-a'))
  for (const f of ['reference-info-base64', 'host-amd-cert-base64', 'security-policy-base64']) await copyFile(path.join(CONTEXT, f), path.join(root, 'security-context-a', f))
  t.is((await readUvmInformation({ env: {}, root })).source, 'security-context directory')
})

test('host certificate errors match what Go reports for the same inputs', (t) => {
  const b64 = read('security-context/host-amd-cert-base64')
  t.notThrows(() => parseHostAmdCertificate(b64))
  t.throws(() => parseHostAmdCertificate(''), { code: 'ATTEST_THIM_JSON' } as never)
  t.throws(() => parseHostAmdCertificate(b64.slice(0, -1)), { code: 'ATTEST_BASE64' } as never)
  t.throws(() => parseHostAmdCertificate(b64.slice(0, -4)), { code: 'ATTEST_THIM_JSON' } as never)
  t.throws(() => parseTcbm('not-hex', 'THIM'), { message: /THIM: TCBM "not-hex" is not a hexadecimal 64-bit value/ })
})

test('a broken host certificate is logged and skipped, not fatal', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'encfs-secctx-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  await writeFile(path.join(dir, 'reference-info-base64'), 'AAAA')
  await writeFile(path.join(dir, 'host-amd-cert-base64'), 'not base64!')
  await writeFile(path.join(dir, 'security-policy-base64'), 'cG9saWN5')
  const info = await readUvmInformation({ env: { UVM_SECURITY_CONTEXT_DIR: dir } })
  t.is(info.hostAmdCertificate, undefined)
  t.is(info.securityPolicy, 'cG9saWN5')
})

test('report_data is SHA-256 of the runtime data then 32 zero bytes, as in the Go code', (t) => {
  t.is(maaReportData(Buffer.alloc(0)).toString('hex'), misc.report_data_generation.empty_input!)
  t.is(maaReportData(readFileSync(path.join(DATA, 'snp/runtime_data.json'))).toString('hex'), misc.report_data_generation['runtime_data.json']!)
  t.is(maaReportData(readFileSync(path.join(DATA, 'keys/wrapping_test_key.jwks.json'))).toString('hex'), misc.report_data_generation['wrapping_test_key.jwks.json']!)
})
