// What the API answers when things go wrong: refused (403) vs upstream unavailable (502 bad
// answer, 503 unreachable or throttled, 504 timeout) vs our fault (500); every error body is
// {"error": message}, Fastify's own errors and malformed HTTP included; slow clients time out.
import test from 'ava'
import { connect } from 'node:net'
import { pino } from 'pino'
import type { InjectOptions } from 'fastify'
import { startSkrStack, type SkrStack } from '../helpers/skr-stack.js'
import { buildApi } from '../../src/api/server.js'
import { apiStatusFor } from '../../src/api/error-status.js'
import { ServiceStatus } from '../../src/api/status.js'
import { AttestationContext } from '../../src/attestation/context.js'
import { HttpError } from '../../src/http/errors.js'
import { SkrError } from '../../src/skr/errors.js'
import { MaaError } from '../../src/maa/errors.js'
import { AttestationError } from '../../src/attestation/errors.js'

let s: SkrStack
let app: ReturnType<typeof buildApi>
let bearer: string
const logger = pino({ level: 'silent' })

test.before(async () => {
  s = await startSkrStack()
  bearer = (await s.authority.issue(s.akv.audience, 'app')).token
  app = buildApi({
    status: new ServiceStatus(),
    logger,
    ca: s.ca,
    // 127.0.0.1:1 as a vault the operator runs, so that its being unreachable is what is tested.
    vaultHosts: [...s.vaultHosts, { endpoint: '127.0.0.1:1', audience: 'https://vault.azure.net' }],
    bodyLimit: 64 * 1024,
    attestation: new AttestationContext({ attestation: 'simulated', simulatedStateDir: `${s.dir}/snp`, uvm: s.uvm, logger }),
    timeouts: { headersMs: 500, requestMs: 1000, keepAliveMs: 300 },
  })
  await app.listen({ host: '127.0.0.1', port: 0 })
})
test.after.always(async () => {
  await app?.close()
  await s?.stop()
})

const b64 = (x: string) => Buffer.from(x).toString('base64')
const post = (url: string, payload: unknown) => app.inject({ method: 'POST', url, payload: payload as Record<string, unknown> })

function onlyError(t: import('ava').ExecutionContext, body: string, what: string): string {
  let parsed: unknown
  try {
    parsed = JSON.parse(body)
  } catch {
    t.fail(`${what}: not JSON: ${body}`)
    return ''
  }
  t.deepEqual(Object.keys(parsed as object), ['error'], `${what}: ${body}`)
  t.is(typeof (parsed as { error: unknown }).error, 'string', what)
  return (parsed as { error: string }).error
}

test.serial('an unreachable MAA or vault is 503, not a refusal', async (t) => {
  const maa = await post('/attest/maa', { maa_endpoint: '127.0.0.1:1', runtime_data: b64('{}') })
  t.is(maa.statusCode, 503)
  t.regex(onlyError(t, maa.body, 'maa'), /^attestation failed: MAA attestation: 127\.0\.0\.1:1 cannot be reached/)
  const akv = await post('/key/release', { maa_endpoint: s.maa.endpoint, akv_endpoint: '127.0.0.1:1', kid: 'k', access_token: bearer })
  t.is(akv.statusCode, 503)
  t.regex(onlyError(t, akv.body, 'akv'), /^secure key release failed: key release: 127\.0\.0\.1:1 cannot be reached/)
})

test.serial('MAA answering 500 until the retries run out is 502; answering 429 is 503; refusing the evidence is 403', async (t) => {
  s.maa.failNext(4, 500)
  const bad = await post('/attest/maa', { maa_endpoint: s.maa.endpoint, runtime_data: b64('{}') })
  t.is(bad.statusCode, 502)
  t.regex(onlyError(t, bad.body, '500'), /HTTP 500/)
  s.maa.failNext(4, 429)
  const throttled = await post('/attest/maa', { maa_endpoint: s.maa.endpoint, runtime_data: b64('{}') })
  t.is(throttled.statusCode, 503)
  t.regex(onlyError(t, throttled.body, '429'), /HTTP 429/)
  s.maa.failNext(1, 400)
  const refused = await post('/attest/maa', { maa_endpoint: s.maa.endpoint, runtime_data: b64('{}') })
  t.is(refused.statusCode, 403)
  t.regex(onlyError(t, refused.body, '400'), /HTTP 400/)
})

test.serial('no SEV-SNP device here is our fault: 500, with the reason', async (t) => {
  const local = buildApi({ status: new ServiceStatus(), logger, attestation: new AttestationContext({ attestation: 'auto', uvm: s.uvm, logger }) })
  t.teardown(() => local.close())
  const res = await local.inject({ method: 'POST', url: '/attest/raw', payload: { runtime_data: b64('{}') } })
  t.is(res.statusCode, 500)
  t.regex(onlyError(t, res.body, 'no provider'), /SEV-SNP|sev-guest/)
})

test('how errors map to statuses', (t) => {
  t.is(apiStatusFor(new HttpError('HTTP_TIMEOUT', 'x')), 504)
  t.is(apiStatusFor(new HttpError('HTTP_UNREACHABLE', 'x')), 503)
  t.is(apiStatusFor(new SkrError('SKR_IDENTITY', 'x', { cause: new HttpError('HTTP_TIMEOUT', 'y') })), 504, 'the cause decides')
  t.is(apiStatusFor(new SkrError('SKR_RELEASE_REFUSED', 'x', { upstreamStatus: 403 })), 403)
  t.is(apiStatusFor(new SkrError('SKR_RELEASE_REFUSED', 'x', { upstreamStatus: 401 })), 403)
  t.is(apiStatusFor(new SkrError('SKR_RELEASE_UNAVAILABLE', 'x', { upstreamStatus: 503 })), 502)
  t.is(apiStatusFor(new SkrError('SKR_RELEASE_UNAVAILABLE', 'x', { upstreamStatus: 429 })), 503)
  t.is(apiStatusFor(new MaaError('MAA_ATTEST_FAILED', 'x', { upstreamStatus: 408 })), 504)
  t.is(apiStatusFor(new MaaError('MAA_BAD_ANSWER', 'x', { upstreamStatus: 200 })), 502)
  t.is(apiStatusFor(new SkrError('SKR_JWS_INVALID', 'x')), 502)
  t.is(apiStatusFor(new SkrError('SKR_CHAIN_UNTRUSTED', 'x')), 502)
  t.is(apiStatusFor(new AttestationError('ATTEST_NO_PROVIDER', 'x')), 500)
  t.is(apiStatusFor(new TypeError('bug')), 500)
})

test.serial('Fastify\'s own errors come out as {"error": message} too', async (t) => {
  const cases: [string, InjectOptions, number][] = [
    ['unknown path', { method: 'GET', url: '/nope' }, 404],
    ['HEAD of an unknown path', { method: 'HEAD', url: '/nope' }, 404],
    ['wrong method', { method: 'POST', url: '/status' }, 405],
    ['OPTIONS', { method: 'OPTIONS', url: '/attest/raw' }, 405],
    ['body too large', { method: 'POST', url: '/attest/raw', headers: { 'content-type': 'application/json' }, payload: `{"runtime_data":"${'A'.repeat(100 * 1024)}"}` }, 413],
    ['a text body that is not JSON', { method: 'POST', url: '/attest/raw', headers: { 'content-type': 'text/plain' }, payload: 'hello' }, 400],
    ['JSON without a content type, missing its member', { method: 'POST', url: '/attest/raw', payload: Buffer.from('{}') }, 400],
    ['no body at all', { method: 'POST', url: '/attest/raw' }, 400],
    ['malformed JSON', { method: 'POST', url: '/attest/raw', headers: { 'content-type': 'application/json' }, payload: '{"runtime_data":' }, 400],
    ['empty JSON body', { method: 'POST', url: '/attest/raw', headers: { 'content-type': 'application/json' }, payload: '' }, 400],
    ['JSON that is not an object', { method: 'POST', url: '/attest/raw', headers: { 'content-type': 'application/json' }, payload: '[1,2]' }, 400],
    ['JSON null', { method: 'POST', url: '/attest/raw', headers: { 'content-type': 'application/json' }, payload: 'null' }, 400],
    ['bad URL encoding', { method: 'GET', url: '/%zz' }, 400],
    ['prototype poisoning', { method: 'POST', url: '/attest/raw', headers: { 'content-type': 'application/json' }, payload: '{"__proto__":{"x":1},"runtime_data":"e30="}' }, 400],
  ]
  for (const [what, req, status] of cases) {
    const res = await app.inject(req)
    t.is(res.statusCode, status, `${what}: ${res.body}`)
    if (req.method !== 'HEAD') onlyError(t, res.body, what)
  }
})

/** Sends raw bytes on a socket and collects what comes back until the server closes it. */
function raw(port: number, chunks: (string | { waitMs: number })[], timeoutMs = 5000): Promise<{ text: string; closedAfterMs: number }> {
  return new Promise((resolve, reject) => {
    const started = Date.now()
    const socket = connect(port, '127.0.0.1')
    let text = ''
    const timer = setTimeout(() => {
      socket.destroy()
      reject(new Error(`the server kept the connection open for ${timeoutMs} ms; got: ${text}`))
    }, timeoutMs)
    socket.on('data', (d) => {
      text += d.toString()
    })
    socket.on('error', () => {})
    socket.on('close', () => {
      clearTimeout(timer)
      resolve({ text, closedAfterMs: Date.now() - started })
    })
    void (async () => {
      for (const c of chunks) {
        if (typeof c === 'string') socket.write(c)
        else await new Promise((r) => setTimeout(r, c.waitMs))
        if (socket.destroyed) return
      }
    })()
  })
}

const port = () => (app.server.address() as import('node:net').AddressInfo).port
const bodyOf = (text: string) => text.slice(text.indexOf('\r\n\r\n') + 4)

test.serial('malformed HTTP and oversized headers get {"error": ...} too', async (t) => {
  const garbage = await raw(port(), ['THIS IS NOT HTTP\r\n\r\n'])
  t.regex(garbage.text, /^HTTP\/1\.1 400 /)
  onlyError(t, bodyOf(garbage.text), 'garbage')
  const big = await raw(port(), [`GET /status HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20 * 1024)}\r\n\r\n`])
  t.regex(big.text, /^HTTP\/1\.1 431 /)
  onlyError(t, bodyOf(big.text), 'big header')
})

test.serial('a client that sends its headers too slowly is cut off with 408 after the headers timeout', async (t) => {
  const slow = await raw(port(), ['GET /status HTTP/1.1\r\n', { waitMs: 300 }, 'Host: x\r\n', { waitMs: 3000 }, 'X-More: y\r\n\r\n'])
  t.regex(slow.text, /^HTTP\/1\.1 408 /)
  onlyError(t, bodyOf(slow.text), 'slow headers')
  t.true(slow.closedAfterMs < 2500, `closed after ${slow.closedAfterMs} ms`)
})

test.serial('a client that sends its body too slowly is cut off after the request timeout', async (t) => {
  const slow = await raw(port(), [
    'POST /attest/raw HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 40\r\n\r\n{"runtime',
    { waitMs: 4000 },
    '_data":"e30="}',
  ])
  t.regex(slow.text, /^HTTP\/1\.1 408 /)
  onlyError(t, bodyOf(slow.text), 'slow body')
  t.true(slow.closedAfterMs < 3500, `closed after ${slow.closedAfterMs} ms`)
})

test.serial('an idle keep-alive connection is closed after the keep-alive timeout', async (t) => {
  const idle = await raw(port(), ['GET /status HTTP/1.1\r\nHost: x\r\n\r\n'])
  t.regex(idle.text, /^HTTP\/1\.1 200 /)
  t.true(idle.closedAfterMs < 2000, `closed after ${idle.closedAfterMs} ms`)
})
