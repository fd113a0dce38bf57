import { createHash } from 'node:crypto'
import { silentLogger } from '../log/logger.js'
import type { VtpmProvider } from '../attestation/providers/vtpm.js'
import { parseReport } from '../attestation/report.js'
import { guestPlatform } from '../attestation/guest-platform.js'
import { attestAzureGuest, decryptGuestToken, type GuestEvidence } from '../maa/guest-attest.js'
import { verifyMaaToken } from '../maa/token-verify.js'
import { AZURE_VTPM, ATTESTED_PCRS, type EphemeralKey } from '../tpm/vtpm.js'
import { stepLogger, vaultRelease, type ReleaseOptions } from './vault-release.js'
import type { VaultHost } from './vault-hosts.js'
import { SkrError } from './errors.js'
import { aesKeyUnwrap, splitWrappedKey } from './unwrap.js'
import { interpretReleasedKey, type ReleasedKey } from './released-key.js'

/** What encfs asks the vault to wrap with on a CVM: RSA-OAEP-SHA256, which the vTPM decrypts. */
export const CVM_WRAP = 'RSA_AES_KEY_WRAP_256'

/** The guest evidence of this VM's vTPM and the ephemeral key it names (steps 1-4 of docs/key-release.md#cvm). */
export async function gatherGuestEvidence(
  provider: VtpmProvider,
  o: Pick<ReleaseOptions, 'collateral' | 'logger' | 'signal'>,
  step: (name: string, extra?: Record<string, unknown>) => void = () => {},
): Promise<{ evidence: GuestEvidence; key: EphemeralKey }> {
  const tpm = provider.tpm
  step('creating the ephemeral key in the vTPM', { tcti: tpm.tcti, pcrs: ATTESTED_PCRS })
  const key = await tpm.ephemeralKey(ATTESTED_PCRS)
  // The HCL report is refreshed with the key's hash as user data: its SNP report then binds the key too.
  step('reading the HCL report')
  const { hcl } = await provider.hclReport(createHash('sha256').update(key.public).digest(), o.signal)
  const chain = await o.collateral.chainFor(parseReport(hcl.snpReport))
  step('quoting the PCRs')
  const quote = await tpm.quote(Buffer.alloc(0), ATTESTED_PCRS)
  const ak = await tpm.attestationKey()
  const akCert = await tpm.nvRead(AZURE_VTPM.akCert, 'the attestation key certificate')
  const platform = await guestPlatform({ logger: o.logger ?? silentLogger })
  const evidence: GuestEvidence = {
    ...platform,
    akCert,
    akPub: ak.public,
    quote: quote.attest,
    quoteSignature: quote.signature,
    pcrs: key.pcrs,
    encKeyPub: key.public,
    encKeyCertifyInfo: key.attest,
    encKeyCertifyInfoSignature: key.signature,
    snpReport: hcl.snpReport,
    vcekCertChain: chain.chainPem,
    runtimeData: hcl.variableData,
  }
  return { evidence, key }
}

/**
 * Secure key release on an Azure confidential VM (docs/key-release.md#cvm), as Azure's guest
 * attestation library and its secure key release sample do it: the vTPM makes an ephemeral RSA
 * key bound by policy to the PCRs, certified by its attestation key; MAA's AzureGuest endpoint
 * checks the quote, the certification and the HCL report (whose variable data holds the
 * attestation key) and answers a token encrypted to the ephemeral key, whose `x-ms-runtime`
 * names that key; the vault wraps the released key to it, and only this vTPM, in this boot,
 * with these PCRs, can unwrap it.
 */
export async function releaseKeyOnCvm(provider: VtpmProvider, o: ReleaseOptions & { vault: VaultHost }): Promise<ReleasedKey> {
  const logger = o.logger ?? silentLogger
  const step = stepLogger(o)
  const tpm = provider.tpm

  const { evidence, key } = await gatherGuestEvidence(provider, o, step)
  step('attesting with MAA (AzureGuest)', { maa: o.maaEndpoint })
  const encrypted = await attestAzureGuest(evidence, { endpoint: o.maaEndpoint, ca: o.ca, logger, signal: o.signal, attempts: o.attempts, userAgent: o.maaUserAgent })
  const token = decryptGuestToken(encrypted, await tpm.decrypt(key, encrypted.encryptedInnerKey, 'rsaes', "MAA's token key"))
  // Checked before the vault sees it, as the SEV-SNP path checks its token: signature, issuer,
  // validity (docs/attestation.md#token-verification); the guest token's runtime binding is MAA's to check.
  await verifyMaaToken(token, { endpoint: o.maaEndpoint, ca: o.ca, signal: o.signal, logger, attempts: o.attempts })

  const { key: released, enc, ciphertext } = await vaultRelease(o, token, CVM_WRAP, step)
  if (enc !== CVM_WRAP) throw new SkrError('SKR_UNWRAP_ALGORITHM', `the vault wrapped with ${enc}; the vTPM decrypts RSA-OAEP with SHA-256 only (${CVM_WRAP})`)
  const { rsa, kwp } = splitWrappedKey(ciphertext, enc, key.parsed.modulus.length)
  step('unwrapping with the vTPM')
  const kek = await tpm.decrypt(key, rsa, 'oaep-sha256', 'the released key')
  const plaintext = aesKeyUnwrap(kek, kwp)
  const out = interpretReleasedKey(released.kty, released.key_ops, plaintext)
  step('key released', { kty: out.kty })
  return out
}
