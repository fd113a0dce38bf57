import test from 'ava'
import { createServer, type IncomingMessage } from 'node:http'
import { pino } from 'pino'
import type { AccessToken, GetTokenOptions, TokenCredential } from '@azure/identity'
import { retryingCredential as identityRetrying, describeIdentity, usesWorkloadIdentity, type IdentityRetryOptions } from '../../src/identity/credential.js'
import { storageCredential } from '../../src/storage/credential.js'
import { StorageError } from '../../src/storage/errors.js'
import { freePort } from '../helpers/azurite.js'

/** A pino logger that keeps its lines, to see what the retry loop says. */
function captureLogger() {
  const lines: { msg: string; attempt?: number; retries?: number; identity?: string; err?: string }[] = []
  const logger = pino(
    { level: 'debug' },
    {
      write: (s: string) => {
        lines.push(JSON.parse(s))
      },
    },
  )
  return { logger, lines }
}

class FakeCredential implements TokenCredential {
  calls: { at: number; scopes: string | string[] }[] = []
  constructor(private readonly answers: (AccessToken | null | Error)[]) {}
  async getToken(scopes: string | string[], _options?: GetTokenOptions): Promise<AccessToken | null> {
    this.calls.push({ at: Date.now(), scopes })
    const a = this.answers[Math.min(this.calls.length - 1, this.answers.length - 1)]
    if (a instanceof Error) throw a
    return a ?? null
  }
}

/** Retries as storage uses them: its wording, StorageError STORAGE_IDENTITY. */
const STORAGE = { what: 'blob storage', needs: 'has a role on the storage account', error: (m: string, cause: unknown) => new StorageError('STORAGE_IDENTITY', m, { cause }) }
const retryingCredential = (inner: TokenCredential, who: string, o: IdentityRetryOptions) => identityRetrying(inner, who, STORAGE, o)

const TOKEN: AccessToken = { token: 'fake-token', expiresOnTimestamp: Date.now() + 3600_000 }

test('retryingCredential retries a failing identity endpoint until it answers', async (t) => {
  const inner = new FakeCredential([new Error('connect ECONNREFUSED 169.254.169.254:80'), new Error('HTTP 503'), TOKEN])
  const { logger, lines } = captureLogger()
  const cred = retryingCredential(inner, 'managed identity with client id abc', { retries: 5, retryDelayMs: 60, logger })
  const started = Date.now()
  const token = await cred.getToken('https://storage.azure.com/.default')
  t.deepEqual(token, TOKEN)
  t.is(inner.calls.length, 3)
  t.deepEqual(inner.calls[0]!.scopes, 'https://storage.azure.com/.default')
  t.true(Date.now() - started >= 2 * 60 - 5, 'waited the configured delay between attempts')
  for (let i = 1; i < inner.calls.length; i++) t.true(inner.calls[i]!.at - inner.calls[i - 1]!.at >= 55, `gap before attempt ${i + 1}`)
  const retries = lines.filter((l) => /retrying/.test(l.msg))
  t.is(retries.length, 2)
  t.is(retries[0]!.attempt, 1)
  t.is(retries[0]!.retries, 5)
  t.is(retries[0]!.identity, 'managed identity with client id abc')
})

test('retryingCredential gives up after the configured attempts with a clear error', async (t) => {
  const inner = new FakeCredential([new Error('ManagedIdentityCredential: Network unreachable')])
  const cred = retryingCredential(inner, 'managed identity with client id abc', { retries: 4, retryDelayMs: 40 })
  const started = Date.now()
  const err = await t.throwsAsync(cred.getToken('https://storage.azure.com/.default'), { instanceOf: StorageError })
  t.is(inner.calls.length, 4, 'exactly the configured number of attempts')
  t.true(Date.now() - started >= 3 * 40 - 5, 'with the configured delay between them')
  t.is(err?.code, 'STORAGE_IDENTITY')
  t.regex(String(err?.message), /managed identity with client id abc/)
  t.regex(String(err?.message), /after 4 attempts/)
  t.regex(String(err?.message), /Network unreachable/)
  t.regex(String(err?.message), /role on the storage account/)
  t.is((err?.cause as Error | undefined)?.message, 'ManagedIdentityCredential: Network unreachable')
})

test('retryingCredential treats a null token as a failure and retries', async (t) => {
  const inner = new FakeCredential([null, TOKEN])
  const cred = retryingCredential(inner, 'x', { retries: 3, retryDelayMs: 1 })
  t.deepEqual(await cred.getToken('s'), TOKEN)
  t.is(inner.calls.length, 2)
  const never = new FakeCredential([null])
  const err = await t.throwsAsync(retryingCredential(never, 'x', { retries: 2, retryDelayMs: 1 }).getToken('s'), { instanceOf: StorageError })
  t.regex(String(err?.message), /no token returned/)
  t.is(never.calls.length, 2)
})

test('retryingCredential stops retrying once the caller aborts', async (t) => {
  const inner = new FakeCredential([new Error('down')])
  const cred = retryingCredential(inner, 'x', { retries: 10, retryDelayMs: 1000 })
  const ac = new AbortController()
  ac.abort()
  const started = Date.now()
  await t.throwsAsync(cred.getToken('s', { abortSignal: ac.signal }), { instanceOf: StorageError })
  t.is(inner.calls.length, 1)
  t.true(Date.now() - started < 900, 'no retry delay after the abort')
})

test('the identity description follows the configuration and workload identity variables', (t) => {
  t.is(describeIdentity({ client_id: 'cid' }, {}), 'managed identity with client id cid')
  t.is(describeIdentity({ resource_id: '/subscriptions/s/rg/id' }, {}), 'managed identity /subscriptions/s/rg/id')
  t.is(describeIdentity(undefined, {}), 'the system-assigned managed identity')
  const wi = { AZURE_CLIENT_ID: 'wic', AZURE_TENANT_ID: 't', AZURE_FEDERATED_TOKEN_FILE: '/var/run/token' }
  t.true(usesWorkloadIdentity(wi))
  t.false(usesWorkloadIdentity({ AZURE_CLIENT_ID: 'wic', AZURE_TENANT_ID: 't' }))
  t.is(describeIdentity({ client_id: 'cid' }, wi), 'workload identity (client wic)')
})

// Variables that would steer @azure/identity (and MSAL) away from IMDS; cleared for the test, then restored.
const IDENTITY_ENV = [
  'AZURE_POD_IDENTITY_AUTHORITY_HOST',
  'IDENTITY_ENDPOINT',
  'IDENTITY_HEADER',
  'IDENTITY_SERVER_THUMBPRINT',
  'IMDS_ENDPOINT',
  'MSI_ENDPOINT',
  'MSI_SECRET',
  'AZURE_CLIENT_ID',
  'AZURE_TENANT_ID',
  'AZURE_FEDERATED_TOKEN_FILE',
  'AZURE_AUTHORITY_HOST',
]

// MSAL keeps the managed identity source (endpoint and HTTP client) and the token cache in static
// fields: the first credential of a process fixes them. So there is one IMDS test in this file.
test.serial('storageCredential gets a managed identity token from IMDS after it refused and answered 503, sending the configured client id', async (t) => {
  const saved = Object.fromEntries(IDENTITY_ENV.map((k) => [k, process.env[k]]))
  const port = await freePort()
  const clientId = '00000000-1111-2222-3333-444444444444'
  const FAILURES = 6 // 2 connection resets, then 4 × 503
  const seen: { url: URL; headers: IncomingMessage['headers'] }[] = []
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', `http://127.0.0.1:${port}`)
    seen.push({ url, headers: req.headers })
    const n = seen.length
    if (n <= 2) {
      req.socket.destroy() // the endpoint is not up yet
      return
    }
    if (n <= FAILURES) {
      res.writeHead(503, { 'content-type': 'application/json', 'retry-after-ms': '10' })
      res.end(JSON.stringify({ error: 'temporarily_unavailable' }))
      return
    }
    const now = Math.floor(Date.now() / 1000)
    res.writeHead(200, { 'content-type': 'application/json' })
    res.end(
      JSON.stringify({
        access_token: 'imds-token-for-storage',
        expires_in: '3600',
        expires_on: String(now + 3600),
        resource: url.searchParams.get('resource') ?? '',
        token_type: 'Bearer',
      }),
    )
  })
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve))
  try {
    for (const k of IDENTITY_ENV) delete process.env[k]
    process.env.AZURE_POD_IDENTITY_AUTHORITY_HOST = `http://127.0.0.1:${port}`
    const { logger, lines } = captureLogger()
    const cred = storageCredential({ client_id: clientId }, { retries: 10, retryDelayMs: 100, logger })
    const token = await cred.getToken('https://storage.azure.com/.default')
    t.is(token?.token, 'imds-token-for-storage')
    t.true((token?.expiresOnTimestamp ?? 0) > Date.now() + 3000_000, 'expiry taken from the response')
    t.is(seen.length, FAILURES + 1, 'every refusal and 503 was retried, then one success')
    for (const { url, headers } of seen) {
      t.regex(url.pathname, /^\/metadata\/identity\/oauth2\/token\/?$/)
      t.is(url.searchParams.get('client_id'), clientId, 'the configured client id is sent')
      t.is(url.searchParams.get('resource'), 'https://storage.azure.com')
      t.is(headers.metadata, 'true')
    }
    // The SDK retries a few times on its own (3 retries as of @azure/identity 4.13); six failures
    // outlast that, so our loop must have retried at least once.
    t.true(
      lines.some((l) => /identity endpoint not ready; retrying/.test(l.msg)),
      'retryingCredential retried',
    )
    t.false(JSON.stringify(lines).includes('imds-token-for-storage'), 'the token is never logged')
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k]
      else process.env[k] = v
    }
    const closed = new Promise<void>((resolve) => server.close(() => resolve()))
    server.closeAllConnections()
    await closed
  }
  t.true(process.env.AZURE_POD_IDENTITY_AUTHORITY_HOST === saved.AZURE_POD_IDENTITY_AUTHORITY_HOST, 'environment restored')
})
