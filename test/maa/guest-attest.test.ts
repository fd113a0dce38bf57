// MAA's guest attestation of a confidential VM against the MAA emulator: evidence gathered from
// swtpm provisioned as the vTPM, the token decrypted by the vTPM, and forged evidence refused.
import test from 'ava'
import { createHash } from 'node:crypto'
import { importJWK, jwtVerify } from 'jose'
import { E2eFixture } from '../helpers/e2e.js'
import type { SkrStack } from '../helpers/skr-stack.js'
import type { SwtpmVtpm } from '../helpers/swtpm.js'
import { vtpmProvider, type VtpmProvider } from '../../src/attestation/providers/vtpm.js'
import { gatherGuestEvidence } from '../../src/skr/cvm-release.js'
import { attestAzureGuest, decryptGuestToken, type GuestEvidence } from '../../src/maa/guest-attest.js'
import { hasCode } from '../../src/errors/encfs-error.js'
import type { EphemeralKey } from '../../src/tpm/vtpm.js'

const e2e = new E2eFixture(test)
let s: SkrStack
let vtpm: SwtpmVtpm
let provider: VtpmProvider
let evidence: GuestEvidence
let key: EphemeralKey

test.before(async () => {
  s = await e2e.skrStack()
  vtpm = await e2e.vtpm(s)
  provider = vtpmProvider(vtpm.tcti)
  ;({ evidence, key } = await gatherGuestEvidence(provider, { collateral: s.collateral }))
})

const attest = (e: GuestEvidence) => attestAzureGuest(e, { endpoint: s.maa.endpoint, ca: s.ca, attempts: 1 })

test.serial('the token is encrypted to the ephemeral key: the vTPM opens it, and it carries the claims MAA issues for a CVM', async (t) => {
  const encrypted = await attest(evidence)
  const jwt = decryptGuestToken(encrypted, await provider.tpm.decrypt(key, encrypted.encryptedInnerKey, 'rsaes', 'the token key'))
  const { payload } = await jwtVerify(jwt, await importJWK(s.maa.jwks().keys[0]!, 'RS256'), { issuer: s.maa.url })
  t.is(payload['x-ms-attestation-type'], 'azurevm')
  t.deepEqual(payload['x-ms-azurevm-attested-pcrs'], [0, 1, 2, 3, 4, 5, 6, 7])
  t.is(payload['x-ms-azurevm-ostype'], 'Linux')
  const runtime = payload['x-ms-runtime'] as { keys: { kid: string; n: string; key_ops: string[] }[] }
  t.is(runtime.keys[0]!.kid, 'TpmEphemeralEncryptionKey')
  t.is(runtime.keys[0]!.n, key.parsed.modulus.toString('base64url'))
  t.deepEqual(runtime.keys[0]!.key_ops, ['encrypt'])
  const tee = payload['x-ms-isolation-tee'] as Record<string, unknown> & { 'x-ms-runtime': { keys: { kid: string }[]; 'user-data': string } }
  t.is(tee['x-ms-attestation-type'], 'sevsnpvm')
  t.is(tee['x-ms-compliance-status'], 'azure-compliant-cvm')
  t.is(tee['x-ms-sevsnpvm-is-debuggable'], false)
  t.is(tee['x-ms-runtime'].keys[0]!.kid, 'HCLAkPub')
  // encfs's own addition: the HCL report's user data is the hash of the ephemeral key.
  t.is(tee['x-ms-runtime']['user-data'], `${createHash('sha256').update(key.public).digest('hex')}${'00'.repeat(32)}`.toUpperCase())
})

test.serial('a token for someone else cannot be opened: another key cannot decrypt the inner key', async (t) => {
  const encrypted = await attest(evidence)
  const err = t.throws(() => decryptGuestToken(encrypted, Buffer.alloc(32, 7)))
  t.true(hasCode(err, 'MAA_BAD_ANSWER'))
})

test.serial('forged evidence is refused, each with the reason MAA gives', async (t) => {
  const other = await provider.tpm.ephemeralKey([0, 1, 2, 3, 4, 5, 6])
  const flip = (b: Buffer, at: number) => {
    const c = Buffer.from(b)
    c[at]! ^= 1
    return c
  }
  const pcrs = new Map(evidence.pcrs)
  pcrs.set(7, Buffer.alloc(32, 0x77))
  const cases: [string, GuestEvidence, RegExp][] = [
    ['variable data altered', { ...evidence, runtimeData: flip(evidence.runtimeData, 40) }, /SNP report verification failed: report_data/],
    ['another attestation key', { ...evidence, akPub: key.public }, /AikPub is not the HCLAkPub of the HCL report/],
    ['PCR values not the quoted ones', { ...evidence, pcrs }, /the PCR values sent are not the ones quoted/],
    ['quote signature altered', { ...evidence, quoteSignature: flip(evidence.quoteSignature, 10) }, /the quote signature does not verify/],
    ['a key the certification is not about', { ...evidence, encKeyPub: other.public }, /EncKeyCertifyInfo does not certify TpmInfo\.EncKeyPub/],
    [
      'a key bound to other PCRs',
      { ...evidence, encKeyPub: other.public, encKeyCertifyInfo: other.attest, encKeyCertifyInfoSignature: other.signature },
      /not bound by policy to the quoted PCR values/,
    ],
  ]
  for (const [name, forged, reason] of cases) {
    const err = await t.throwsAsync(attest(forged), undefined, name)
    t.true(hasCode(err, 'MAA_ATTEST_FAILED'), `${name}: ${err?.message}`)
    t.regex(err!.message, reason, name)
  }
})
