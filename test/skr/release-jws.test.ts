import test from 'ava'
import { readFileSync } from 'node:fs'
import { createPrivateKey, X509Certificate } from 'node:crypto'
import { rootCertificates } from 'node:tls'
import { CompactSign } from 'jose'
import { vector } from '../helpers/vectors.js'
import { verifyReleaseJws } from '../../src/skr/release-jws.js'
import { verifyServerChain, defaultTrustedRoots } from '../../src/skr/trust.js'
import { createServerPki, type ServerPki } from '../../src/emulators/pki.js'

let pki: ServerPki
test.before(async () => {
  pki = await createServerPki(['vault.test', '127.0.0.1'])
})

const payload = { request: { 'api-version': '7.4', enc: 'CKM_RSA_AES_KEY_WRAP', kid: 'k' }, response: { key: { key: { kty: 'oct-HSM', key_hsm: 'x' } } } }

async function sign(body: unknown, o: { key?: string; x5c?: string[] } = {}): Promise<string> {
  const der = (pem: string) => new X509Certificate(pem).raw.toString('base64')
  return new CompactSign(Buffer.from(JSON.stringify(body)))
    .setProtectedHeader({ alg: 'RS256', x5c: o.x5c ?? [der(pki.certPem), der(pki.caPem)] })
    .sign(createPrivateKey(o.key ?? pki.keyPem))
}

test("a JWS signed by the vault's TLS certificate under a trusted CA verifies and yields the payload", async (t) => {
  const roots = [new X509Certificate(pki.caPem)]
  t.deepEqual(await verifyReleaseJws(await sign(payload), { host: 'vault.test', roots }), payload)
  t.deepEqual(await verifyReleaseJws(await sign(payload), { host: '127.0.0.1', roots }), payload)
})

test('tampering, an untrusted root, another host name and a malformed JWS are refused', async (t) => {
  const roots = [new X509Certificate(pki.caPem)]
  const jws = await sign(payload)
  const [h, , s] = jws.split('.')
  const forged = `${h}.${Buffer.from(JSON.stringify({ ...payload, request: { enc: 'RSA_AES_KEY_WRAP_256' } })).toString('base64url')}.${s}`
  await t.throwsAsync(verifyReleaseJws(forged, { host: 'vault.test', roots }), { code: 'SKR_JWS_SIGNATURE' } as never)
  const other = await createServerPki(['vault.test'], 'someone else')
  await t.throwsAsync(
    verifyReleaseJws(await sign(payload, { key: other.keyPem, x5c: [new X509Certificate(other.certPem).raw.toString('base64')] }), { host: 'vault.test', roots }),
    { code: 'SKR_CHAIN_UNTRUSTED', message: /NODE_EXTRA_CA_CERTS/ } as never,
  )
  await t.throwsAsync(verifyReleaseJws(jws, { host: 'othervault.vault.azure.net', roots }), { code: 'SKR_HOST_MISMATCH' } as never)
  await t.throwsAsync(verifyReleaseJws(`${jws}.x`, { host: 'vault.test', roots }), { code: 'SKR_JWS_INVALID' } as never)
  await t.throwsAsync(verifyReleaseJws(`${Buffer.from('{"alg":"RS256"}').toString('base64url')}.e30.AA`, { host: 'vault.test', roots }), { message: /no x5c/ })
})

test('the real managed-HSM chain of the Go tests: expired today, valid at 2022-10-01 for its host', (t) => {
  const v = JSON.parse(readFileSync(vector('akv', 'x5c_chain_vectors.json'), 'utf8')) as { x5c_expired_chain: { certs: string[]; dns_name: string } }
  const chain = v.x5c_expired_chain.certs.map((c) => new X509Certificate(Buffer.from(c, 'base64')))
  const roots = [chain[2]!]
  t.throws(() => verifyServerChain(chain.slice(0, 2), { host: v.x5c_expired_chain.dns_name, roots }), { code: 'SKR_CHAIN_EXPIRED' } as never)
  t.notThrows(() => verifyServerChain(chain.slice(0, 2), { host: v.x5c_expired_chain.dns_name, roots, at: new Date('2022-10-01T00:00:00Z') }))
  t.throws(() => verifyServerChain(chain.slice(0, 2), { host: 'evil.example.com', roots, at: new Date('2022-10-01T00:00:00Z') }), { code: 'SKR_HOST_MISMATCH' } as never)
  // DigiCert Global Root G2 is among Node's roots: the default trust store accepts the chain too.
  t.true(rootCertificates.length > 100)
  t.notThrows(() => verifyServerChain(chain.slice(0, 2), { host: v.x5c_expired_chain.dns_name, roots: defaultTrustedRoots({}), at: new Date('2022-10-01T00:00:00Z') }))
})
