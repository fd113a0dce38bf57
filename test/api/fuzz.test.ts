// Property-based fuzzing of the API: any method, path, content type and body (and raw bytes on
// the socket) gets an answer in the API's shape, {"error": message} for every error, and never
// an internal error from an unexpected exception. Replay a failure with FUZZ_SEED=<seed>.
import test from 'ava'
import fc from 'fast-check'
import { connect, type AddressInfo } from 'node:net'
import { pino } from 'pino'
import type { InjectOptions } from 'fastify'
import { buildApi } from '../../src/api/server.js'
import { ServiceStatus } from '../../src/api/status.js'
import type { AttestationContext } from '../../src/attestation/context.js'
import { AttestationError } from '../../src/attestation/errors.js'
import { fuzzParameters, mutate, mutation } from '../helpers/fuzz.js'

// No SEV-SNP here: every attestation fails fast (500, our side), so no request leaves the machine.
const attestation = {
  ready: () => Promise.reject(new AttestationError('ATTEST_NO_PROVIDER', 'no SEV-SNP report source found (fuzzing)')),
  describe: () => ({ mode: 'auto' }),
} as unknown as AttestationContext
const app = buildApi({
  status: new ServiceStatus(),
  attestation,
  logger: pino({ level: 'silent' }),
  bodyLimit: 16 * 1024,
  timeouts: { headersMs: 1000, requestMs: 2000, keepAliveMs: 500 },
})
test.before(async () => {
  await app.listen({ host: '127.0.0.1', port: 0 })
})
test.after.always(async () => {
  await app.close()
})

const VALID: Record<string, Record<string, unknown>> = {
  '/attest/raw': { runtime_data: 'e30=' },
  '/attest/combined': { runtime_data: 'e30=' },
  '/attest/maa': { maa_endpoint: 'sharedeus.eus.attest.azure.net', runtime_data: 'e30=' },
  '/key/release': { maa_endpoint: 'sharedeus.eus.attest.azure.net', akv_endpoint: 'v.vault.azure.net', kid: 'k', access_token: 't' },
}
const paths = [...Object.keys(VALID), '/status', '/', '/attest', '/key/release/', '/status?x=1', '//status', '/%zz', '/attest/raw%00', '/key/../status']

const body = fc.oneof(
  fc.constantFrom(...Object.keys(VALID)).chain((p) => fc.array(mutation, { maxLength: 4 }).map((ms) => JSON.stringify(mutate(VALID[p], ms)))),
  fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)),
  fc.string({ maxLength: 200 }),
  fc.constant(''),
  fc.constant(`{"runtime_data":"${'A'.repeat(20 * 1024)}"}`),
)

const request: fc.Arbitrary<InjectOptions> = fc
  .record({
    method: fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD'),
    url: fc.oneof(
      fc.constantFrom(...paths),
      fc.webPath().map((p) => p || '/'),
    ),
    contentType: fc.constantFrom(
      undefined,
      'application/json',
      'application/json; charset=utf-8',
      'application/json; charset=latin1',
      'text/plain',
      'application/x-www-form-urlencoded',
      'multipart/form-data',
      '',
      'application/jsonx',
    ),
    body,
  })
  .map(({ method, url, contentType, body }) => ({
    method: method as InjectOptions['method'],
    url,
    headers: contentType === undefined ? {} : { 'content-type': contentType },
    ...(method === 'GET' || method === 'HEAD' ? {} : { payload: body }),
  }))

test('any request gets a status and, for an error, a body of {"error": message} only', async (t) => {
  await fc.assert(
    fc.asyncProperty(request, async (req) => {
      const res = await app.inject(req)
      if (res.statusCode < 400) return
      if (req.method === 'HEAD') return
      const parsed = JSON.parse(res.body) as Record<string, unknown>
      if (Object.keys(parsed).length !== 1 || typeof parsed.error !== 'string') throw new Error(`${res.statusCode} in another shape: ${res.body}`)
      if (res.statusCode >= 500 && (parsed.error === 'internal error' || !/SEV-SNP/.test(parsed.error)))
        throw new Error(`${res.statusCode} from an unexpected exception: ${res.body}`)
    }),
    fuzzParameters(500),
  )
  t.pass()
})

/** {"error": message} and nothing else (the message may hold escaped quotes: a path echoed back). */
function isErrorBody(body: string): boolean {
  try {
    const parsed = JSON.parse(body) as unknown
    return typeof parsed === 'object' && parsed !== null && Object.keys(parsed).join() === 'error' && typeof (parsed as { error: unknown }).error === 'string'
  } catch {
    return false
  }
}

/** The HTTP answers in `text`, one after another (bodies by content-length); throws at anything else. */
function answers(text: string): { status: number; body: string }[] {
  const found: { status: number; body: string }[] = []
  let rest = text
  while (rest !== '') {
    const head = /^HTTP\/1\.[01] (\d{3}) [^\r]*\r\n((?:[^\r]*\r\n)*?)\r\n/.exec(rest)
    if (!head) throw new Error(`not an HTTP answer: ${JSON.stringify(rest.slice(0, 200))}`)
    const length = Number(/^content-length: *(\d+)/im.exec(head[2] ?? '')?.[1] ?? rest.length - head[0].length)
    found.push({ status: Number(head[1]), body: rest.slice(head[0].length, head[0].length + length) })
    rest = rest.slice(head[0].length + length)
  }
  return found
}

function rawExchange(port: number, bytes: Uint8Array): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1')
    let text = ''
    const done = () => {
      clearTimeout(timer)
      socket.destroy()
      resolve(text)
    }
    const timer = setTimeout(done, 3000)
    socket.on('data', (d) => {
      text += d.toString('latin1')
    })
    socket.on('error', done)
    socket.on('close', done)
    socket.end(bytes)
  })
}

test("raw bytes on the socket: an HTTP answer in the API's shape or a closed connection, and the server keeps serving", async (t) => {
  const port = (app.server.address() as AddressInfo).port
  const line = fc.oneof(
    fc.uint8Array({ maxLength: 300 }),
    fc
      .tuple(
        fc.constantFrom('GET', 'POST', 'BREW', ''),
        fc.string({ maxLength: 40 }),
        fc.constantFrom('HTTP/1.1', 'HTTP/1.0', 'HTTP/9.9', ''),
        fc.array(fc.string({ maxLength: 30 }), { maxLength: 4 }),
      )
      .map(([m, p, v, headers]) => Buffer.from(`${m} /${p} ${v}\r\n${headers.join('\r\n')}\r\n\r\n`)),
  )
  await fc.assert(
    fc.asyncProperty(line, async (bytes) => {
      const text = await rawExchange(port, bytes)
      if (text === '') return
      // Pipelined bytes may get more than one answer (the last one to a malformed request): each must be in shape.
      for (const answer of answers(text)) {
        if (answer.status >= 400 && answer.body !== '' && !isErrorBody(answer.body)) throw new Error(`an error in another shape: ${JSON.stringify(text.slice(0, 300))}`)
      }
    }),
    fuzzParameters(80),
  )
  const ok = await app.inject({ method: 'GET', url: '/status' })
  t.is(ok.statusCode, 200)
})
