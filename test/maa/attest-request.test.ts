import test from 'ava'
import { readFileSync } from 'node:fs'
import { createHash } from 'node:crypto'
import { vector } from '../helpers/vectors.js'
import { attestRequestBody, urlBase64 } from '../../src/maa/attest-request.js'

const inputs = () => ({
  report: readFileSync(vector('snp', 'snp_report.bin')),
  vcekCertChain: readFileSync(vector('snp', 'uvm_host_amd_certificate.pem'), 'utf8'),
  referenceInfo: readFileSync(vector('snp', 'body.uvm_reference_info.bin')).toString('base64'),
  runtimeData: readFileSync(vector('snp', 'runtime_data.json')),
})

test("the attest request for Go's production test inputs is byte-identical to Go's (nonce 0)", (t) => {
  const body = attestRequestBody({ ...inputs(), nonce: 0n })
  t.is(body, readFileSync(vector('maa', 'maa_attest_request.nonce0.json'), 'utf8').trim())
  t.is(createHash('sha256').update(body).digest('hex'), '765fa43a3fe9809153159476957c749a3680c12ca3bcf8c370448d2cd526b0cf')
})

test('the report bundle and endorsements match the derived vectors; no reference info, no Endorsements', (t) => {
  const body = JSON.parse(attestRequestBody({ ...inputs(), nonce: 1n })) as { report: string }
  const bundle = Buffer.from(body.report, 'base64').toString()
  t.is(bundle, readFileSync(vector('maa', 'maa_report_bundle.json'), 'utf8').trim())
  const bare = JSON.parse(Buffer.from((JSON.parse(attestRequestBody({ ...inputs(), referenceInfo: '', nonce: 1n })) as { report: string }).report, 'base64').toString()) as Record<
    string,
    string
  >
  t.deepEqual(Object.keys(bare), ['SnpReport', 'VcekCertChain'])
})

test('nonces above 2^53 are written exactly as an unsigned 64-bit number', (t) => {
  t.regex(attestRequestBody({ ...inputs(), nonce: 18446744073709551615n }), /"nonce":18446744073709551615}$/)
  t.is(urlBase64(Buffer.from([0xfb, 0xff])), '-_8=')
})
