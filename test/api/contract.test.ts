// The skr API contract, endpoint by endpoint, against simulated SNP and the MAA / Key Vault emulators.
import test from 'ava'
import { startSilentListener } from '../helpers/fault-proxy.js'
import { startImdsEmulator } from '../../src/emulators/imds/server.js'
import { randomBytes } from 'node:crypto'
import { pino } from 'pino'
import { importJWK, jwtVerify } from 'jose'
import { startSkrStack, type SkrStack } from '../helpers/skr-stack.js'
import { buildApi } from '../../src/api/server.js'
import { ServiceStatus } from '../../src/api/status.js'
import { AttestationContext } from '../../src/attestation/context.js'
import { verifyReport } from '../../src/attestation/verify.js'
import { maaReportData } from '../../src/attestation/report-data.js'
import { MaaUserAgent } from '../../src/maa/user-agent.js'

let s: SkrStack
let bearer: string
const octKey = randomBytes(32)
const logLines: string[] = []
let app: ReturnType<typeof buildApi>
const status = new ServiceStatus()

test.before(async () => {
  s = await startSkrStack()
  bearer = (await s.authority.issue(s.akv.audience, 'app')).token
  await s.importKey('app-key', octKey)
  await s.importKey('not-for-us', octKey, [[{ claim: 'x-ms-sevsnpvm-is-debuggable', equals: 'true' }]])
  const logger = pino(
    { level: 'info' },
    {
      write: (l: string) => {
        logLines.push(l)
      },
    },
  )
  app = buildApi({
    status,
    attestation: new AttestationContext({ attestation: 'simulated', simulatedStateDir: `${s.dir}/snp`, uvm: s.uvm, logger }),
    logger,
    ca: s.ca,
    vaultHosts: s.vaultHosts,
    bodyLimit: 64 * 1024,
    maaUserAgent: new MaaUserAgent('ConfidentialSkrContainer contract-test'),
  })
})
test.after.always(async () => {
  await app?.close()
  await s?.stop()
})

const post = (url: string, payload: unknown) => app.inject({ method: 'POST', url, payload: payload as Record<string, unknown> })
const b64 = (x: string) => Buffer.from(x).toString('base64')

test.serial('GET /status: "Status OK" with the attestation provider, 503 while starting', async (t) => {
  const ok = await app.inject({ method: 'GET', url: '/status' })
  t.is(ok.statusCode, 200)
  t.is(ok.json<{ message: string }>().message, 'Status OK')
  status.phase = 'starting'
  const starting = await app.inject({ method: 'GET', url: '/status' })
  t.is(starting.statusCode, 503)
  t.like(starting.json(), { ready: false, phase: 'starting' })
  status.phase = 'ready'
})

test.serial('POST /attest/raw: a report whose REPORT_DATA is SHA-256 of the runtime data', async (t) => {
  const runtime = '{"pub":"x"}'
  const res = await post('/attest/raw', { runtime_data: b64(runtime) })
  t.is(res.statusCode, 200)
  const report = Buffer.from(res.json<{ report: string }>().report, 'hex')
  t.is(report.length, 1184)
  const certs = await s.snp.thimCerts()
  t.notThrows(() => verifyReport(report, { chain: certs.vcekCert + certs.certificateChain, reportData: maaReportData(Buffer.from(runtime)), hostData: s.hostData }))
})

test.serial("POST /attest/combined: evidence, endorsements, TCB and UVM endorsements in Go's shape", async (t) => {
  const res = await post('/attest/combined', { runtime_data: b64('{}') })
  t.is(res.statusCode, 200)
  const body = res.json<Record<string, string>>()
  t.deepEqual(Object.keys(body), ['endorsed_tcb', 'endorsements', 'evidence', 'uvm_endorsements'])
  t.is(body.endorsed_tcb, (await s.snp.thimCerts()).tcbm)
  t.regex(Buffer.from(body.endorsements!, 'base64').toString(), /BEGIN CERTIFICATE/)
  t.is(Buffer.from(body.evidence!, 'base64').length, 1184)
  t.is(body.uvm_endorsements, s.uvm.referenceInfo)
})

test.serial('POST /attest/maa: a token from MAA whose x-ms-runtime is the runtime data', async (t) => {
  const res = await post('/attest/maa', { maa_endpoint: s.maa.endpoint, runtime_data: b64('{"nonce":"n1"}') })
  t.is(res.statusCode, 200)
  const { payload } = await jwtVerify(res.json<{ token: string }>().token, await importJWK(s.maa.jwks().keys[0]!, 'RS256'))
  t.deepEqual(payload['x-ms-runtime'], { nonce: 'n1' })
  t.is(s.maa.lastUserAgent, 'ConfidentialSkrContainer contract-test', 'maaconfig.user_agent reaches MAA')
})

test.serial('POST /attest/maa with include_claims: the verified claims next to the token; without it, only the token (as Go answers)', async (t) => {
  const runtime = '{"nonce":"n2"}'
  const res = await post('/attest/maa', { maa_endpoint: s.maa.endpoint, runtime_data: b64(runtime), include_claims: true })
  t.is(res.statusCode, 200)
  const body = res.json<{ token: string; claims: Record<string, unknown> }>()
  t.deepEqual(Object.keys(body).sort(), ['claims', 'token'])
  const { payload } = await jwtVerify(body.token, await importJWK(s.maa.jwks().keys[0]!, 'RS256'))
  t.deepEqual(body.claims, payload, 'the claims are those of the token')
  t.is(body.claims['x-ms-sevsnpvm-reportdata'], maaReportData(Buffer.from(runtime)).toString('hex'))
  t.true(
    logLines.some((l) => l.includes('MAA token verified')),
    'the sidecar verified the token before answering',
  )
  const plain = await post('/attest/maa', { maa_endpoint: s.maa.endpoint, runtime_data: b64(runtime), include_claims: false })
  t.deepEqual(Object.keys(plain.json<object>()), ['token'])
  const bad = await post('/attest/maa', { maa_endpoint: s.maa.endpoint, runtime_data: b64(runtime), include_claims: 'yes' })
  t.is(bad.statusCode, 400)
  t.regex(bad.json<{ error: string }>().error, /include_claims must be a boolean/)
})

test.serial('POST /key/release: the key as a JWK JSON string, as the Go sidecar answers', async (t) => {
  const res = await post('/key/release', { maa_endpoint: s.maa.endpoint, akv_endpoint: s.akv.endpoint, kid: 'app-key', access_token: bearer })
  t.is(res.statusCode, 200)
  const key = res.json<{ key: string }>().key
  t.is(typeof key, 'string')
  t.is((JSON.parse(key) as { k: string }).k, octKey.toString('base64url'))
  t.is(s.maa.lastUserAgent, 'ConfidentialSkrContainer contract-test', "key release's MAA request carries maaconfig.user_agent too, as Go's one User-Agent per process")
  t.false(logLines.join('').includes(bearer), 'the access token is never logged')
  t.false(logLines.join('').includes(octKey.toString('base64url')), 'the key is never logged')
})

test.serial('bad requests: missing fields, bad base64, endpoints with a scheme, oversized bodies, wrong methods, unknown paths', async (t) => {
  const cases: [string, unknown, RegExp][] = [
    ['/attest/raw', {}, /runtime_data is required/],
    ['/attest/raw', { runtime_data: '' }, /runtime_data must not be empty/],
    ['/attest/raw', { runtime_data: 'not base64!' }, /runtime_data must be standard base64/],
    ['/attest/raw', { runtime_data: 'abc' }, /runtime_data is not valid standard base64/],
    ['/attest/maa', { runtime_data: b64('{}') }, /maa_endpoint is required/],
    ['/attest/maa', { maa_endpoint: 'https://x.attest.azure.net', runtime_data: b64('{}') }, /maa_endpoint must be a host name/],
    ['/key/release', { maa_endpoint: s.maa.endpoint, akv_endpoint: s.akv.endpoint }, /kid is required/],
    ['/key/release', { maa_endpoint: s.maa.endpoint, akv_endpoint: s.akv.endpoint, kid: '../etc' }, /kid must be a key name/],
  ]
  for (const [url, payload, expected] of cases) {
    const res = await post(url, payload)
    t.is(res.statusCode, 400, `${url} ${JSON.stringify(payload)}`)
    t.regex(res.json<{ error: string }>().error, expected)
  }
  const big = await post('/attest/raw', { runtime_data: 'A'.repeat(100 * 1024) })
  t.is(big.statusCode, 413)
  t.regex(big.json<{ error: string }>().error, /larger than 65536 bytes/)
  const notJson = await app.inject({ method: 'POST', url: '/attest/raw', headers: { 'content-type': 'application/json' }, payload: '{"runtime_data":' })
  t.is(notJson.statusCode, 400)
  t.is((await app.inject({ method: 'GET', url: '/key/release' })).statusCode, 405)
  t.is((await app.inject({ method: 'POST', url: '/status' })).statusCode, 405)
  const unknown = await app.inject({ method: 'GET', url: '/attest/other' })
  t.is(unknown.statusCode, 404)
})

test.serial('a release policy that is not satisfied is a 403 that names the claim (unreachable services: test/api/errors.test.ts)', async (t) => {
  const policy = await post('/key/release', { maa_endpoint: s.maa.endpoint, akv_endpoint: s.akv.endpoint, kid: 'not-for-us', access_token: bearer })
  t.is(policy.statusCode, 403)
  t.regex(policy.json<{ error: string }>().error, /HTTP 403 .*x-ms-sevsnpvm-is-debuggable is false, not true/)
})

test.serial("bodies as Go skr's gin binds them: JSON whatever the Content-Type (curl -d, as Go's maa-test-kata-cc example sends it), member names in any case", async (t) => {
  const { execFile } = await import('node:child_process')
  const { promisify } = await import('node:util')
  const { generateKeyPairSync } = await import('node:crypto')
  await app.listen({ host: '127.0.0.1', port: 0 })
  const port = (app.server.address() as { port: number }).port
  // Go's example: curl --fail-with-body -XPOST http://localhost:8080/attest/maa -d "{\"runtime_data\":\"$(cat rsa.jwk | base64 -w 0)\", \"maa_endpoint\": …}"
  const jwk = JSON.stringify(generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ format: 'jwk' }))
  const body = `{"runtime_data":"${b64(jwk)}", "maa_endpoint": "${s.maa.endpoint}"}`
  const curl = await promisify(execFile)('curl', ['--silent', '--fail-with-body', '-XPOST', `http://127.0.0.1:${port}/attest/maa`, '-d', body])
  t.truthy((JSON.parse(curl.stdout) as { token?: string }).token, curl.stdout)
  for (const headers of [{}, { 'content-type': 'text/plain' }, { 'content-type': 'application/x-www-form-urlencoded' }]) {
    const res = await app.inject({ method: 'POST', url: '/attest/raw', headers, payload: `{"runtime_data":"${b64('{}')}"}` })
    t.is(res.statusCode, 200, `${JSON.stringify(headers)}: ${res.body}`)
  }
  // encoding/json matches member names case-insensitively; an exact match wins.
  const upper = await app.inject({ method: 'POST', url: '/attest/raw', payload: { RUNTIME_DATA: b64('{}') } })
  t.is(upper.statusCode, 200, upper.body)
  const mixed = await post('/key/release', { Maa_Endpoint: s.maa.endpoint, AKV_endpoint: s.akv.endpoint, KID: 'app-key', Access_Token: bearer })
  t.is(mixed.statusCode, 200, mixed.body)
  t.is((JSON.parse(mixed.json<{ key: string }>().key) as { k: string }).k, octKey.toString('base64url'))
  const notJson = await app.inject({ method: 'POST', url: '/attest/raw', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: 'runtime_data=e30%3D' })
  t.is(notJson.statusCode, 400)
  t.regex(notJson.json<{ error: string }>().error, /^invalid request: the body is not valid JSON/)
})

test.serial('POST /key/release naming a host that is not a vault: 403 naming akv_endpoint, and that host sees nothing (no MAA token, no vault token)', async (t) => {
  const outside = await startSilentListener()
  t.teardown(() => outside.stop())
  const imds = await startImdsEmulator(s.authority)
  t.teardown(() => imds.stop())
  const before = process.env.AZURE_POD_IDENTITY_AUTHORITY_HOST
  process.env.AZURE_POD_IDENTITY_AUTHORITY_HOST = imds.url
  t.teardown(() => {
    process.env.AZURE_POD_IDENTITY_AUTHORITY_HOST = before
  })
  const res = await post('/key/release', { maa_endpoint: s.maa.endpoint, akv_endpoint: outside.endpoint, kid: 'app-key' })
  t.is(res.statusCode, 403)
  t.regex(res.json<{ error: string }>().error, /^secure key release failed: akv_endpoint "127\.0\.0\.1:\d+" is not a Key Vault or Managed HSM of the Azure clouds/)
  t.is(outside.connections, 0, 'the outside host was never contacted')
  t.is(imds.requests, 0, 'no vault token was minted')
})
