// MAA token verification against an instance that publishes its keys as MAA does (x5c
// certificates, kid the certificate's SHA-256, discovery through the OpenID configuration), over
// TLS: every way a token can be wrong is refused with its own code.
import test from 'ava'
import { createHash, createPrivateKey, generateKeyPairSync, randomUUID, X509Certificate } from 'node:crypto'
import { SignJWT } from 'jose'
import { startTlsServer, sendJson, type TlsServer } from '../../src/emulators/tls-server.js'
import { createSigningCertificate, type SigningCertificate } from '../../src/emulators/pki.js'
import { verifyMaaToken, type TokenCheckOptions } from '../../src/maa/token-verify.js'
import { MaaSigningKeys } from '../../src/maa/signing-keys.js'
import { maaReportData } from '../../src/attestation/report-data.js'

interface MaaShaped {
  server: TlsServer
  /** Paths asked of it, in order. */
  requests: string[]
  signer: SigningCertificate
  /** A new signing certificate; the old one is no longer published. */
  rotate(): Promise<void>
}

const kidOf = (certPem: string) => createHash('sha256').update(new X509Certificate(certPem).raw).digest('base64')

async function maaShaped(): Promise<MaaShaped> {
  const state = { signer: await createSigningCertificate('maa-shaped test signing key'), requests: [] as string[] }
  const server: TlsServer = await startTlsServer(
    (req, _body, res) => {
      const path = new URL(req.url ?? '/', 'https://x').pathname
      state.requests.push(path)
      if (path === '/.well-known/openid-configuration')
        return sendJson(res, 200, { issuer: server.url, jwks_uri: `${server.url}/certs`, id_token_signing_alg_values_supported: ['RS256'] })
      if (path === '/certs')
        return sendJson(res, 200, { keys: [{ x5c: [new X509Certificate(state.signer.certPem).raw.toString('base64')], kid: kidOf(state.signer.certPem), kty: 'RSA' }] })
      sendJson(res, 404, { error: { code: 'NotFound', message: path } })
    },
    { name: 'MAA-shaped' },
  )
  return {
    server,
    requests: state.requests,
    get signer() {
      return state.signer
    },
    async rotate() {
      state.signer = await createSigningCertificate('maa-shaped rotated key')
    },
  }
}

let maa: MaaShaped
let attacker: TlsServer
let attackerHits = 0
test.before(async () => {
  maa = await maaShaped()
  attacker = await startTlsServer(
    (_req, _body, res) => {
      attackerHits++
      sendJson(res, 200, { keys: [] })
    },
    { name: 'attacker' },
  )
})
test.after.always(async () => {
  await maa?.server.stop()
  await attacker?.stop()
})

const runtime = Buffer.from(
  '{"keys":[{"e":"AQAB","key_ops":["encrypt"],"kid":"wrapping","kty":"RSA","n":"sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw"}]}',
)
const now = () => Math.floor(Date.now() / 1000)

/** The SEV-SNP claims of Microsoft's published sample token, bound to `runtime`. */
function snpClaims(over: Record<string, unknown> = {}): Record<string, unknown> {
  const t = now()
  return {
    exp: t + 8 * 3600,
    iat: t,
    nbf: t,
    iss: maa.server.url,
    jti: randomUUID(),
    'x-ms-attestation-type': 'sevsnpvm',
    'x-ms-compliance-status': 'azure-compliant-uvm',
    'x-ms-policy-hash': 'LTPRQQju-FejAwdYihF8YV_c2XWebG9joKvrHKc3bxs',
    'x-ms-runtime': JSON.parse(runtime.toString()) as unknown,
    'x-ms-sevsnpvm-hostdata': 'ab'.repeat(32),
    'x-ms-sevsnpvm-is-debuggable': false,
    'x-ms-sevsnpvm-reportdata': maaReportData(runtime).toString('hex'),
    'x-ms-sevsnpvm-snpfw-svn': 8,
    'x-ms-sevsnpvm-vmpl': 0,
    'x-ms-ver': '1.0',
    ...over,
  }
}

/** Signed as MAA signs: RS256, jku and kid in the header, the certificate's key. */
async function sign(claims: Record<string, unknown>, o: { key?: string; header?: Record<string, unknown> } = {}): Promise<string> {
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'RS256', jku: `${maa.server.url}/certs`, kid: kidOf(maa.signer.certPem), typ: 'JWT', ...o.header })
    .sign(createPrivateKey(o.key ?? maa.signer.keyPem))
}

const check = (o: Partial<TokenCheckOptions> = {}): TokenCheckOptions => ({
  endpoint: maa.server.endpoint,
  ca: [maa.server.caPem],
  keys: new MaaSigningKeys(maa.server.endpoint),
  runtimeData: runtime,
  ...o,
})

const code = (err: unknown) => (err as { code?: string } | undefined)?.code
const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url')

test.serial('a token signed as MAA signs (x5c key, certificate kid) verifies: claims, issuer and header', async (t) => {
  const verified = await verifyMaaToken(await sign(snpClaims()), check())
  t.is(verified.issuer, maa.server.url)
  t.is(verified.claims['x-ms-sevsnpvm-hostdata'], 'ab'.repeat(32))
  t.deepEqual(verified.claims['x-ms-runtime'], JSON.parse(runtime.toString()))
  t.is(verified.header.kid, kidOf(maa.signer.certPem))
})

test.serial('each way a token can be wrong is refused with its own code', async (t) => {
  const good = await sign(snpClaims())
  const [h, , sig] = good.split('.')
  const tampered = `${h}.${b64(snpClaims({ 'x-ms-sevsnpvm-hostdata': 'cd'.repeat(32) }))}.${sig}`
  const other = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()
  const cases: [string, string | Promise<string>, string, RegExp][] = [
    ['tampered claims', tampered, 'MAA_TOKEN_SIGNATURE', /signature does not verify/],
    ['expired', sign(snpClaims({ exp: now() - 600, iat: now() - 9000, nbf: now() - 9000 })), 'MAA_TOKEN_EXPIRED', /expired at .*120 s of clock skew/],
    ['not yet valid', sign(snpClaims({ nbf: now() + 900 })), 'MAA_TOKEN_NOT_YET_VALID', /nbf is .* in the future/],
    [
      'another issuer',
      sign(snpClaims({ iss: 'https://sharedeus.eus.attest.azure.net' })),
      'MAA_TOKEN_ISSUER',
      /issued by "https:\/\/sharedeus\.eus\.attest\.azure\.net", not by https:\/\/127\.0\.0\.1/,
    ],
    ['another key, its own kid', sign(snpClaims(), { key: other, header: { kid: 'attacker-key' } }), 'MAA_TOKEN_KEY_UNKNOWN', /key attacker-key, which .* does not publish/],
    ['another key, the instance kid', sign(snpClaims(), { key: other }), 'MAA_TOKEN_SIGNATURE', /signature does not verify/],
    ['alg none', `${b64({ alg: 'none', typ: 'JWT' })}.${b64(snpClaims())}.`, 'MAA_TOKEN_ALGORITHM', /alg "none"; only RS256/],
    ['HS256', new SignJWT(snpClaims()).setProtectedHeader({ alg: 'HS256' }).sign(Buffer.alloc(32, 1)), 'MAA_TOKEN_ALGORITHM', /alg "HS256"/],
    ['foreign jku', sign(snpClaims(), { header: { jku: `${attacker.url}/certs` } }), 'MAA_TOKEN_JKU', /signing keys on https:\/\/127\.0\.0\.1:\d+\/certs, not on the instance/],
    ['another runtime', sign(snpClaims({ 'x-ms-runtime': { keys: [] } })), 'MAA_TOKEN_RUNTIME_DATA', /x-ms-runtime \{"keys":\[\]\}, not the runtime data/],
    ['another report data', sign(snpClaims({ 'x-ms-sevsnpvm-reportdata': '00'.repeat(64) })), 'MAA_TOKEN_REPORT_DATA', /reportdata is 0+, not SHA-256/],
    ['not a JWT', 'a.b', 'MAA_TOKEN_MALFORMED', /2 dot-separated parts/],
  ]
  const seen = new Set<string>()
  for (const [what, token, expected, message] of cases) {
    const err = await t.throwsAsync(verifyMaaToken(await token, check()), undefined, what)
    t.is(code(err), expected, `${what}: ${err?.message}`)
    t.regex(err!.message, message, what)
    seen.add(code(err)!)
  }
  t.is(
    seen.size,
    10,
    'a tampered token and one signed by another key under the instance kid share MAA_TOKEN_SIGNATURE, alg none and HS256 MAA_TOKEN_ALGORITHM; every other case has its own code',
  )
  t.is(attackerHits, 0, 'no request went to the foreign jku')
})

test.serial('clock skew: two minutes either way are tolerated', async (t) => {
  await t.notThrowsAsync(verifyMaaToken(await sign(snpClaims({ exp: now() - 60 })), check()))
  await t.notThrowsAsync(verifyMaaToken(await sign(snpClaims({ nbf: now() + 60, iat: now() + 60 })), check()))
  const strict = await t.throwsAsync(verifyMaaToken(await sign(snpClaims({ exp: now() - 60 })), check({ clockSkewSeconds: 10 })))
  t.is(code(strict), 'MAA_TOKEN_EXPIRED')
})

test.serial('keys are found through the OpenID configuration, cached, fetched again once for an unknown kid, and expire', async (t) => {
  let clock = Date.now()
  const keys = new MaaSigningKeys(maa.server.endpoint, { maxAgeMs: 60_000, now: () => clock })
  const noJku = { header: { jku: undefined } }
  maa.requests.length = 0
  await verifyMaaToken(await sign(snpClaims(), noJku), check({ keys }))
  t.deepEqual(maa.requests, ['/.well-known/openid-configuration', '/certs'])
  await verifyMaaToken(await sign(snpClaims(), noJku), check({ keys }))
  t.is(maa.requests.length, 2, 'the second token uses the cached keys')

  await maa.rotate()
  await verifyMaaToken(await sign(snpClaims(), noJku), check({ keys }))
  t.deepEqual(maa.requests.slice(2), ['/certs'], 'a new kid: the keys are fetched again, once')

  const unknown = await t.throwsAsync(verifyMaaToken(await sign(snpClaims(), { header: { jku: undefined, kid: 'retired' } }), check({ keys })))
  t.is(code(unknown), 'MAA_TOKEN_KEY_UNKNOWN')
  t.deepEqual(maa.requests.slice(3), ['/certs'], 'an unknown kid costs exactly one fetch')

  clock += 61_000
  await verifyMaaToken(await sign(snpClaims(), noJku), check({ keys }))
  t.deepEqual(maa.requests.slice(4), ['/.well-known/openid-configuration', '/certs'], 'after their lifetime the configuration and keys are fetched again')
})

test.serial('without runtime data the binding is not checked (policy administration answers)', async (t) => {
  const verified = await verifyMaaToken(await sign({ iss: maa.server.url, exp: now() + 60, 'x-ms-policy-result': 'Updated' }), check({ runtimeData: undefined }))
  t.is(verified.claims['x-ms-policy-result'], 'Updated')
})
