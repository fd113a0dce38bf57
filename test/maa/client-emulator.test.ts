// The MAA client against the MAA emulator: real TLS, a simulated SNP report, a verified token.
import test from 'ava'
import { mkdtemp, rm } from 'node:fs/promises'
import { createHash } from 'node:crypto'
import os from 'node:os'
import path from 'node:path'
import { importJWK, jwtVerify } from 'jose'
import { startMaaEmulator, type MaaEmulator } from '../../src/emulators/maa/server.js'
import { attestSevSnp } from '../../src/maa/client.js'
import { simulatedProvider, type SimulatedProvider } from '../../src/attestation/providers/simulated.js'
import { maaReportData } from '../../src/attestation/report-data.js'
import { thimChainPem } from '../../src/attestation/thim.js'
import { parsePemChain } from '../../src/attestation/cert-chain.js'

let dir: string
let maa: MaaEmulator
let snp: SimulatedProvider
const policy = createHash('sha256').update('package policy').digest()

test.before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'encfs-maa-'))
  snp = simulatedProvider({ stateDir: path.join(dir, 'snp'), hostData: policy })
  const arks = parsePemChain(thimChainPem(await snp.thimCerts())).slice(2)
  maa = await startMaaEmulator({ trustedArks: arks, expectedHostData: policy })
})
test.after.always(async () => {
  await maa?.stop()
  await rm(dir, { recursive: true, force: true })
})

async function inputs(runtime = Buffer.from('{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB"}]}')) {
  return {
    report: await snp.getReport(maaReportData(runtime)),
    vcekCertChain: thimChainPem(await snp.thimCerts()),
    referenceInfo: Buffer.from('cose').toString('base64'),
    runtimeData: runtime,
    nonce: 42n,
  }
}

test.serial('a simulated report gets an RS256 token with the SNP claims, verifiable with the published keys', async (t) => {
  const i = await inputs()
  const token = await attestSevSnp(i, { endpoint: maa.endpoint, ca: [maa.caPem] })
  const key = await importJWK(maa.jwks().keys[0]!, 'RS256')
  const { payload, protectedHeader } = await jwtVerify(token, key, { issuer: maa.url })
  t.is(protectedHeader.alg, 'RS256')
  t.is(protectedHeader.jku, `${maa.url}/certs`)
  t.is(payload['x-ms-attestation-type'], 'sevsnpvm')
  t.is(payload['x-ms-sevsnpvm-hostdata'], policy.toString('hex'))
  t.is(payload['x-ms-sevsnpvm-is-debuggable'], false)
  t.is(payload['x-ms-sevsnpvm-vmpl'], 0)
  t.is(payload['x-ms-compliance-status'], 'azure-compliant-uvm')
  t.deepEqual(payload['x-ms-runtime'], JSON.parse(i.runtimeData.toString()))
  t.is(payload.nonce, '42')
  t.true(payload.exp! > payload.iat!)
})

test.serial('429 and 5xx are retried with backoff; a refusal names the endpoint and the reason', async (t) => {
  maa.failNext(2, 503)
  const before = maa.attestCount
  t.truthy(await attestSevSnp(await inputs(), { endpoint: maa.endpoint, ca: [maa.caPem], baseDelayMs: 10 }))
  t.is(maa.attestCount - before, 3)
  const i = await inputs()
  const tampered = Buffer.from(i.report)
  tampered[0x90] = tampered[0x90]! ^ 1
  const err = await t.throwsAsync(attestSevSnp({ ...i, report: tampered }, { endpoint: maa.endpoint, ca: [maa.caPem] }))
  t.is((err as { code?: string }).code, 'MAA_ATTEST_FAILED')
  t.regex(err!.message, /HTTP 400: .*signature does not verify/)
  const other = await attestSevSnp({ ...i, runtimeData: Buffer.from('{"other":1}') }, { endpoint: maa.endpoint, ca: [maa.caPem] }).catch((e: Error) => e)
  t.regex((other as Error).message, /report_data .* does not match/)
})

test.serial('the emulator refuses a chain from an untrusted ARK, and a TLS peer it does not know is named', async (t) => {
  const strange = simulatedProvider({ stateDir: path.join(dir, 'other-snp'), hostData: policy })
  const runtime = Buffer.from('{}')
  const err = await t.throwsAsync(
    attestSevSnp(
      { report: await strange.getReport(maaReportData(runtime)), vcekCertChain: thimChainPem(await strange.thimCerts()), runtimeData: runtime, nonce: 1n },
      { endpoint: maa.endpoint, ca: [maa.caPem] },
    ),
  )
  t.regex(err!.message, /not among the trusted roots/)
  const untrusted = await t.throwsAsync(attestSevSnp(await inputs(), { endpoint: maa.endpoint, attempts: 1 }))
  t.is((untrusted as { code?: string }).code, 'HTTP_UNREACHABLE')
  t.regex(untrusted!.message, /NODE_EXTRA_CA_CERTS/)
})

test.serial("the emulator's tokens verify as MAA's do: its OpenID configuration, its keys, bound to the request", async (t) => {
  const { attestVerified } = await import('../../src/maa/verified-attest.js')
  const { MaaSigningKeys } = await import('../../src/maa/signing-keys.js')
  const i = await inputs()
  const verified = await attestVerified(i, { endpoint: maa.endpoint, ca: [maa.caPem], keys: new MaaSigningKeys(maa.endpoint) })
  t.is(verified.issuer, maa.url)
  t.is(verified.header.kid, maa.jwks().keys[0]!.kid)
  t.is(verified.claims['x-ms-sevsnpvm-reportdata'], maaReportData(i.runtimeData).toString('hex'))
  t.deepEqual(verified.claims['x-ms-runtime'], JSON.parse(i.runtimeData.toString()))
})
