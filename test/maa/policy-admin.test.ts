// Attestation policy administration against the MAA emulator in both modes: set, get and reset
// round-trip with verified token hashes; Isolated mode takes only policies signed by a
// policy-management certificate; signers are listed, added and removed; a policy in force is applied.
import test from 'ava'
import { X509Certificate } from 'node:crypto'
import { startSkrStack, type SkrStack } from '../helpers/skr-stack.js'
import { startMaaEmulator, type MaaEmulator } from '../../src/emulators/maa/server.js'
import { createSigningCertificate, type SigningCertificate } from '../../src/emulators/pki.js'
import { startTlsServer, sendJson, type TlsServer } from '../../src/emulators/tls-server.js'
import { changeSigner, getPolicy, listSigners, resetPolicy, setPolicy, signerThumbprint, type AdminOptions } from '../../src/maa/policy-admin.js'
import { policySigner } from '../../src/maa/policy-jws.js'
import { DEFAULT_POLICY } from '../../src/emulators/maa/policy-store.js'
import { releaseKey } from '../../src/skr/release.js'
import { parsePemChain } from '../../src/attestation/cert-chain.js'
import { thimChainPem } from '../../src/attestation/thim.js'

let s: SkrStack
let isolated: MaaEmulator
let owner: SigningCertificate
let second: SigningCertificate
let stranger: SigningCertificate
let admin: string

test.before(async () => {
  s = await startSkrStack()
  ;[owner, second, stranger] = await Promise.all([createSigningCertificate('policy owner'), createSigningCertificate('second signer'), createSigningCertificate('stranger')])
  isolated = await startMaaEmulator({
    trustedArks: parsePemChain(thimChainPem(await s.snp.thimCerts())).slice(2),
    authority: s.authority,
    policyMode: 'Isolated',
    policySigners: [owner.certPem],
  })
  admin = (await s.authority.issue('https://attest.azure.net', 'policy-admin')).token
})
test.after.always(async () => {
  await isolated?.stop()
  await s?.stop()
})

const aad = (): AdminOptions => ({ endpoint: s.maa.endpoint, bearer: admin, ca: s.ca })
const iso = (): AdminOptions => ({ endpoint: isolated.endpoint, bearer: admin, ca: [isolated.caPem] })
const signer = (c: SigningCertificate) => policySigner(c.keyPem, c.certPem)
const code = (err: unknown) => (err as { code?: string } | undefined)?.code

const PERMIT_NON_DEBUGGABLE = `version=1.0;
authorizationrules
{
    [type=="x-ms-sevsnpvm-is-debuggable", value==false] => permit();
};
issuancerules
{
    c:[type=="x-ms-sevsnpvm-hostdata"] => issue(type="encfs-pod-policy", value=c.value);
    => issue(type="encfs-tier", value="gold");
};
`

test.serial('AAD mode: an unsigned policy round-trips (set, get, reset) with verified token hashes, and attestation applies it', async (t) => {
  t.is((await getPolicy('SevSnpVm', aad())).text, DEFAULT_POLICY)
  const set = await setPolicy('SevSnpVm', PERMIT_NON_DEBUGGABLE, aad())
  t.is(set.result, 'Updated')
  t.regex(set.tokenHash, /^[A-Za-z0-9_-]{43}$/)
  const got = await getPolicy('SevSnpVm', aad())
  t.is(got.text, PERMIT_NON_DEBUGGABLE)
  t.is(got.signer, undefined)
  await s.importKey('tiered', Buffer.alloc(32, 7), [[{ claim: 'encfs-tier', equals: 'gold' }]])
  const bearer = (await s.authority.issue(s.akv.audience, 'pod')).token
  const released = await releaseKey(s.releaseOptions('tiered', bearer))
  t.deepEqual(released.material, Buffer.alloc(32, 7), 'the claim the policy issues is in the token, and a release policy can bind to it')
  const reset = await resetPolicy('SevSnpVm', aad())
  t.is(reset.result, 'Removed')
  t.is((await getPolicy('SevSnpVm', aad())).text, DEFAULT_POLICY)
})

test.serial('a policy that denies: attestation fails with the rule named, and so does every release', async (t) => {
  await setPolicy('SevSnpVm', 'version=1.0;\nauthorizationrules\n{\n  [type=="x-ms-sevsnpvm-vmpl", value==0] => deny();\n  => permit();\n};\n', aad())
  t.teardown(() => resetPolicy('SevSnpVm', aad()))
  await s.importKey('any-pod', Buffer.alloc(32, 1))
  const err = await t.throwsAsync(releaseKey(s.releaseOptions('any-pod', (await s.authority.issue(s.akv.audience, 'pod')).token)))
  t.is(code(err), 'MAA_ATTEST_FAILED')
  t.regex(err!.message, /HTTP 400: .*PolicyEvaluationError.*the attestation policy denies it \(authorization rule on line 4\)/)
})

test.serial('a policy with a syntax error is refused by the instance, naming the line', async (t) => {
  const err = await t.throwsAsync(setPolicy('SevSnpVm', 'version=1.0;\nauthorizationrules\n{\n  [type=="x" value==1] => permit();\n};\n', aad()))
  t.is(code(err), 'MAA_POLICY_REFUSED')
  t.regex(err!.message, /HTTP 400 PolicyParsingError: .*line 4: expected "\]", found "value"/)
})

test.serial('Isolated mode: only a policy signed by a policy-management certificate is taken, and get names its signer', async (t) => {
  const unsigned = await t.throwsAsync(setPolicy('SevSnpVm', PERMIT_NON_DEBUGGABLE, iso()))
  t.is(code(unsigned), 'MAA_POLICY_REFUSED')
  t.regex(unsigned!.message, /HTTP 401 .*signed by one of its policy-management certificates/)
  const foreign = await t.throwsAsync(setPolicy('SevSnpVm', PERMIT_NON_DEBUGGABLE, { ...iso(), signer: signer(stranger) }))
  t.is(code(foreign), 'MAA_POLICY_REFUSED')
  t.regex(foreign!.message, /HTTP 401 .*signed by .*CN=stranger, which is not a policy-management certificate/)
  t.is((await getPolicy('SevSnpVm', iso())).text, DEFAULT_POLICY, 'the refused policies changed nothing')

  const set = await setPolicy('SevSnpVm', PERMIT_NON_DEBUGGABLE, { ...iso(), signer: signer(owner) })
  t.is(set.result, 'Updated')
  const got = await getPolicy('SevSnpVm', iso())
  t.is(got.text, PERMIT_NON_DEBUGGABLE)
  t.is(got.signer && signerThumbprint(got.signer), signerThumbprint(new X509Certificate(owner.certPem)))
  await t.throwsAsync(resetPolicy('SevSnpVm', iso()), { message: /HTTP 401/ })
  t.is((await resetPolicy('SevSnpVm', { ...iso(), signer: signer(owner) })).result, 'Removed')
  t.is((await getPolicy('SevSnpVm', iso())).text, DEFAULT_POLICY)
})

test.serial('signers: listed, added and removed only with a current signer; the last one stays', async (t) => {
  const thumb = (c: SigningCertificate) => signerThumbprint(new X509Certificate(c.certPem))
  t.deepEqual((await listSigners(iso())).map(signerThumbprint), [thumb(owner)])
  t.deepEqual(await listSigners(aad()), [], 'an AAD-mode instance has none')
  const byStranger = await t.throwsAsync(changeSigner('add', new X509Certificate(second.certPem), { ...iso(), signer: signer(stranger) }))
  t.is(code(byStranger), 'MAA_POLICY_REFUSED')
  t.is(await changeSigner('add', new X509Certificate(second.certPem), { ...iso(), signer: signer(owner) }), thumb(second))
  t.deepEqual((await listSigners(iso())).map(signerThumbprint), [thumb(owner), thumb(second)])
  t.is((await setPolicy('SevSnpVm', PERMIT_NON_DEBUGGABLE, { ...iso(), signer: signer(second) })).result, 'Updated', 'the new signer may set policies')
  t.is(await changeSigner('remove', new X509Certificate(owner.certPem), { ...iso(), signer: signer(second) }), thumb(owner))
  await t.throwsAsync(setPolicy('SevSnpVm', PERMIT_NON_DEBUGGABLE, { ...iso(), signer: signer(owner) }), { message: /not a policy-management certificate/ })
  const last = await t.throwsAsync(changeSigner('remove', new X509Certificate(second.certPem), { ...iso(), signer: signer(second) }))
  t.regex(last!.message, /the last policy-management certificate cannot be removed/)
  const onAad = await t.throwsAsync(changeSigner('add', new X509Certificate(second.certPem), { ...aad(), signer: signer(second) }))
  t.regex(onAad!.message, /only on an Isolated-mode instance/)
})

test.serial('management requests need a token for https://attest.azure.net', async (t) => {
  const vaultToken = (await s.authority.issue(s.akv.audience, 'pod')).token
  const err = await t.throwsAsync(getPolicy('SevSnpVm', { ...aad(), bearer: vaultToken }))
  t.is(code(err), 'MAA_POLICY_REFUSED')
  t.regex(err!.message, /HTTP 401 .*not for https:\/\/attest\.azure\.net/)
})

test.serial('a key and certificate that are not a pair are refused before anything is sent', (t) => {
  const err = t.throws(() => policySigner(owner.keyPem, stranger.certPem))
  t.is(code(err), 'MAA_POLICY_SIGNER')
})

test.serial('an answer whose x-ms-policy-token-hash is not that of the JWS sent is refused (MAA_POLICY_HASH)', async (t) => {
  // An instance that takes the policy but reports the hash of another one.
  let rogue: TlsServer | undefined
  const { SignJWT } = await import('jose')
  const signing = await createSigningCertificate('rogue maa')
  const { createHash, createPrivateKey } = await import('node:crypto')
  const kid = createHash('sha256').update(new X509Certificate(signing.certPem).raw).digest('base64')
  rogue = await startTlsServer(
    async (req, _body, res) => {
      const path = new URL(req.url ?? '/', 'https://x').pathname
      if (path === '/.well-known/openid-configuration') return sendJson(res, 200, { jwks_uri: `${rogue!.url}/certs` })
      if (path === '/certs') return sendJson(res, 200, { keys: [{ kid, kty: 'RSA', x5c: [new X509Certificate(signing.certPem).raw.toString('base64')] }] })
      const token = await new SignJWT({ 'x-ms-policy-result': 'Updated', 'x-ms-policy-token-hash': 'A'.repeat(43) })
        .setProtectedHeader({ alg: 'RS256', kid })
        .setIssuer(rogue!.url)
        .setExpirationTime('1h')
        .sign(createPrivateKey(signing.keyPem))
      sendJson(res, 200, { token })
    },
    { name: 'rogue MAA' },
  )
  t.teardown(() => rogue!.stop())
  const err = await t.throwsAsync(setPolicy('SevSnpVm', PERMIT_NON_DEBUGGABLE, { endpoint: rogue.endpoint, bearer: admin, ca: [rogue.caPem] }))
  t.is(code(err), 'MAA_POLICY_HASH')
  t.regex(err!.message, /x-ms-policy-token-hash "A{43}", but the JWS sent hashes to [A-Za-z0-9_-]{43}: the policy in force is not the one sent/)
})
