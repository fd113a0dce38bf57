// Key release on an Azure confidential VM, without Azure: swtpm provisioned as the vTPM (its
// paravisor refreshing the HCL report from the simulated SNP chip), the MAA emulator's guest
// attestation, the Key Vault emulator releasing to the vTPM's ephemeral key.
import test from 'ava'
import path from 'node:path'
import { randomBytes, X509Certificate } from 'node:crypto'
import { startSkrStack, type SkrStack } from '../helpers/skr-stack.js'
import { CVM_RELEASE_CLAIMS, startSwtpmVtpm, type SwtpmVtpm } from '../helpers/swtpm.js'
import { simulatedProvider } from '../../src/attestation/providers/simulated.js'
import { vtpmProvider } from '../../src/attestation/providers/vtpm.js'
import { releaseKey } from '../../src/skr/release.js'
import { startMaaEmulator, type MaaEmulator } from '../../src/emulators/maa/server.js'
import { startAkvEmulator, type AkvEmulator } from '../../src/emulators/akv/server.js'
import { parsePemChain } from '../../src/attestation/cert-chain.js'
import { thimChainPem } from '../../src/attestation/thim.js'
import { importKey, releasePolicy } from '../../src/skr/import-key.js'
import { hasCode } from '../../src/errors/encfs-error.js'

let stack: SkrStack
let vtpm: SwtpmVtpm
let maa: MaaEmulator
let akv: AkvEmulator

test.before(async () => {
  stack = await startSkrStack()
  // The paravisor's chip: the stack's simulated chip (same VCEK chain), no HOST_DATA as on a CVM.
  vtpm = await startSwtpmVtpm(simulatedProvider({ stateDir: path.join(stack.dir, 'snp') }))
  maa = await startMaaEmulator({ trustedArks: parsePemChain(thimChainPem(await stack.snp.thimCerts())).slice(2), trustedAkCas: [vtpm.akCa] })
  akv = await startAkvEmulator({ authority: stack.authority, maaCas: [maa.caPem] })
})
test.after.always(async () => {
  await akv?.stop()
  await maa?.stop()
  await vtpm?.stop()
  await stack?.stop()
})

async function importFor(name: string, key: Buffer, claims = CVM_RELEASE_CLAIMS): Promise<void> {
  const bearer = (await stack.authority.issue(akv.audience, 'operator')).token
  await importKey({
    akvEndpoint: akv.endpoint,
    name,
    key: { kty: 'oct-HSM', k: key.toString('base64url') },
    policy: releasePolicy(maa.endpoint, claims),
    bearer,
    ca: [maa.caPem, akv.caPem],
  })
}

async function release(kid: string, o: { maa?: MaaEmulator; attempts?: number } = {}) {
  const via = o.maa ?? maa
  return releaseKey({
    maaEndpoint: via.endpoint,
    akvEndpoint: akv.endpoint,
    kid,
    accessToken: (await stack.authority.issue(akv.audience, 'pod')).token,
    vaultHosts: [{ endpoint: akv.endpoint, audience: akv.audience }],
    provider: vtpmProvider(vtpm.tcti),
    collateral: stack.collateral,
    uvm: stack.uvm,
    ca: [via.caPem, akv.caPem],
    attempts: o.attempts,
  })
}

test.serial('an oct key is released to the vTPM and unwrapped by it: the bytes imported come back', async (t) => {
  const bytes = randomBytes(32)
  await importFor('cvm-key', bytes)
  const refreshes = vtpm.paravisor.refreshes
  const released = await release('cvm-key')
  t.is(released.kty, 'oct')
  t.true(released.material.equals(bytes))
  t.is(vtpm.paravisor.refreshes, refreshes + 1, 'the release wrote user data and read the refreshed HCL report')
  t.is(akv.releases, 1)
})

test.serial('a policy for another attestation type is refused by the vault, naming the claim', async (t) => {
  await importFor('cvm-other', randomBytes(32), [[{ claim: 'x-ms-isolation-tee.x-ms-attestation-type', equals: 'tdxvm' }]])
  const err = await t.throwsAsync(release('cvm-other'))
  t.true(hasCode(err, 'SKR_RELEASE_REFUSED'), err?.message)
  t.regex(err!.message, /x-ms-isolation-tee\.x-ms-attestation-type is sevsnpvm, not tdxvm/)
})

test.serial('MAA refuses evidence whose attestation key is not certified by the trusted vTPM CA', async (t) => {
  // Another CA than the one that issued the vTPM's AK certificate: the emulators' TLS CA.
  const strict = await startMaaEmulator({ trustedArks: parsePemChain(thimChainPem(await stack.snp.thimCerts())).slice(2), trustedAkCas: [new X509Certificate(maa.caPem)] })
  t.teardown(() => strict.stop())
  const err = await t.throwsAsync(release('cvm-key', { maa: strict, attempts: 1 }))
  t.true(hasCode(err, 'MAA_ATTEST_FAILED'), err?.message)
  t.regex(err!.message, /AikCert is not issued by a trusted vTPM CA/)
})

test.serial('an expired guest token is refused before the vault sees it (MAA_TOKEN_EXPIRED)', async (t) => {
  const stale = await startMaaEmulator({ trustedArks: parsePemChain(thimChainPem(await stack.snp.thimCerts())).slice(2), trustedAkCas: [vtpm.akCa], tokenLifetimeSeconds: -600 })
  t.teardown(() => stale.stop())
  await importFor('cvm-stale', randomBytes(32))
  const before = akv.releases
  const err = await t.throwsAsync(release('cvm-stale', { maa: stale }))
  t.true(hasCode(err, 'MAA_TOKEN_EXPIRED'), err?.message)
  t.is(akv.releases, before)
})
