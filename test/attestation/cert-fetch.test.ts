// Certificate fetching against a local server that speaks the AMD KDS, AzCache and THIM paths.
import test from 'ava'
import { createServer, type IncomingMessage, type Server } from 'node:http'
import { readFileSync } from 'node:fs'
import type { X509Certificate } from 'node:crypto'
import path from 'node:path'
import { fetchCertChain, fetchLocalThim, fetchWithRetry } from '../../src/attestation/cert-fetch.js'
import { Collateral } from '../../src/attestation/collateral.js'
import { parseReport } from '../../src/attestation/report.js'
import { parsePemChain } from '../../src/attestation/cert-chain.js'
import { vcekTcbm } from '../../src/attestation/vcek-tcb.js'
import { vector } from '../helpers/vectors.js'

const DATA = vector('snp')
const read = (f: string) => readFileSync(path.join(DATA, f))
const v3 = parseReport(read('snp_report_v3_milan.bin'))
const v2 = parseReport(read('snp_report.bin'))
const azcacheChain = read('snp_report_v3_milan.azcache_chain.pem').toString()
const thimJson = read('uvm_host_amd_certificate.json').toString()
const hostPem = read('uvm_host_amd_certificate.pem').toString()

type Handler = (req: IncomingMessage) => { status: number; body: string | Buffer; delayMs?: number }
let server: Server
let base = ''
let handler: Handler = () => ({ status: 404, body: '' })
const requests: { url: string; metadata?: string }[] = []

test.before(async () => {
  server = createServer((req, res) => {
    requests.push({ url: req.url ?? '', metadata: req.headers.metadata as string | undefined })
    const r = handler(req)
    setTimeout(() => res.writeHead(r.status).end(r.body), r.delayMs ?? 0)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  base = `127.0.0.1:${(server.address() as { port: number }).port}`
})
test.after.always(async () => {
  server.closeAllConnections()
  await new Promise<void>((resolve) => server.close(() => resolve()))
})

const fast = { scheme: 'http' as const, retryDelayMs: () => 10 }

test.serial('AzCache: the URL Go builds, and the TCBM read from the VCEK (0xdb decoded, unlike Go)', async (t) => {
  requests.length = 0
  handler = () => ({ status: 200, body: azcacheChain })
  const chain = await fetchCertChain(
    { endpoint_type: 'AzCache', endpoint: `${base}/cache`, tee_type: 'SevSnpVM', api_version: 'api-version=2020-10-15-preview', client_id: 'clientId=Test' },
    v3,
    fast,
  )
  t.is(requests[0]!.url, `/cache/SevSnpVM/certificates/${v3.chipId}/db18000000000004?api-version=2020-10-15-preview&clientId=Test`)
  t.is(chain.tcbm, 0xdb18000000000004n)
  t.is(chain.chainPem, azcacheChain)
  t.is(vcekTcbm(parsePemChain(hostPem)[0]!), 0x7308000000000003n)
})

test.serial('AMD KDS: VCEK by chip id and TCB parts, then the chain; DER becomes PEM', async (t) => {
  requests.length = 0
  const [vcek, ask, ark] = parsePemChain(hostPem) as [X509Certificate, X509Certificate, X509Certificate]
  handler = (req) => (req.url!.endsWith('/cert_chain') ? { status: 200, body: ask.toString() + ark.toString() } : { status: 200, body: vcek.raw })
  const chain = await fetchCertChain({ endpoint_type: 'AMD', endpoint: `${base}/vcek/v1`, tee_type: 'Milan' }, v2, fast)
  t.is(requests[0]!.url, `/vcek/v1/Milan/${v2.chipId}?ucodeSPL=115&snpSPL=8&teeSPL=0&blSPL=3`)
  t.is(requests[1]!.url, '/vcek/v1/Milan/cert_chain')
  t.true(parsePemChain(chain.chainPem)[0]!.raw.equals(vcek.raw))
  t.is(parsePemChain(chain.chainPem).length, 3)
  t.is(chain.tcbm, v2.reportedTcb.value)
})

test.serial('local THIM: Metadata header, JSON answer, TCBM from it; 503s are retried, a 404 is not', async (t) => {
  requests.length = 0
  let n = 0
  handler = () => (++n <= 2 ? { status: 503, body: 'busy' } : { status: 200, body: thimJson })
  const chain = await fetchLocalThim(`${base}/metadata/THIM/amd/certification`, fast)
  t.is(requests.length, 3)
  t.is(requests[0]!.metadata, 'true')
  t.is(chain.chainPem, hostPem)
  t.is(chain.tcbm, 0x7308000000000003n)
  requests.length = 0
  handler = () => ({ status: 404, body: 'no such chip' })
  const err = await t.throwsAsync(fetchWithRetry(`http://${base}/x`, { ...fast, what: 'test' }))
  t.regex(err!.message, /GET http:\/\/127\.0\.0\.1:\d+\/x failed with HTTP 404: no such chip/)
  t.is(requests.length, 1)
})

test.serial('a hung endpoint times out and the error says how often it was tried', async (t) => {
  handler = () => ({ status: 200, body: thimJson, delayMs: 1000 })
  const err = await t.throwsAsync(fetchLocalThim(base, { ...fast, timeoutMs: 100, attempts: 2 }))
  t.is((err as { code?: string }).code, 'ATTEST_CERT_FETCH')
  t.regex(err!.message, /failed 2 times/)
  const bad = await t.throwsAsync(fetchCertChain({ endpoint_type: 'Nope' as never, endpoint: base }, v2, fast))
  t.regex(bad!.message, /invalid endpoint type: Nope/)
  await t.throwsAsync(fetchCertChain({ endpoint_type: 'AzCache' }, v2, fast), { message: /certificate endpoint not set/ })
})

test.serial('collateral: the host certificate when its TCBM matches, else the certcache; a mismatch is an error', async (t) => {
  const thim = JSON.parse(thimJson) as { vcekCert: string; tcbm: string; certificateChain: string; cacheControl: string }
  requests.length = 0
  const withHost = new Collateral({ uvm: { securityPolicy: '', referenceInfo: '', source: 'environment', hostAmdCertificate: thim } })
  t.is((await withHost.chainFor(v2)).chainPem, hostPem)
  t.is(requests.length, 0, 'nothing fetched')
  handler = () => ({ status: 200, body: azcacheChain })
  const cc = { endpoint_type: 'AzCache' as const, endpoint: base, api_version: 'api-version=1', client_id: 'clientId=x' }
  const mixed = new Collateral({ uvm: { securityPolicy: '', referenceInfo: '', source: 'environment', hostAmdCertificate: thim }, certcache: cc, fetch: fast })
  t.is((await mixed.chainFor(v3)).tcbm, 0xdb18000000000004n, 'the v3 report has another TCB: fetched')
  const mismatch = new Collateral({ certcache: cc, fetch: fast })
  const err = await t.throwsAsync(mismatch.chainFor(v2))
  t.is((err as { code?: string }).code, 'ATTEST_TCB_MISMATCH')
  handler = () => ({ status: 500, body: 'down' })
  const none = await t.throwsAsync(new Collateral({ certcache: cc, fetch: { ...fast, attempts: 1 } }).chainFor(v2))
  t.is((none as { code?: string }).code, 'ATTEST_NO_CERTIFICATES')
  t.regex(none!.message, /UVM_HOST_AMD_CERTIFICATE or azure_info\.certcache/)
})
