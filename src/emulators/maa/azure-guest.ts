import { constants, createCipheriv, publicEncrypt, randomBytes, verify, X509Certificate, type JsonWebKey } from 'node:crypto'
import { verifyReport, type VerifiedReport } from '../../attestation/verify.js'
import { maaReportData } from '../../attestation/report-data.js'
import { GUEST_TOKEN_AAD } from '../../maa/guest-attest.js'
import { OBJECT, parseAttestation, parseRsaPublic, pcrDigest, policyPcrDigest, TPM_ALG_SHA256, TPM_ST_ATTEST_CERTIFY, type RsaPublic } from '../../tpm/structures.js'
import { snpClaims } from './claims.js'

/**
 * MAA's guest attestation (`POST /attest/AzureGuest`) of an Azure confidential VM, on loopback:
 * the SNP report against its VCEK chain and the HCL variable data; the attestation key against
 * the HCLAkPub of that data and its certificate; the quote and the ephemeral key's certification
 * against the attestation key; the ephemeral key's attributes and PCR policy. The answer is a
 * token encrypted to the ephemeral key, as MAA's is (docs/key-release.md#cvm). Not checked: the
 * TCG log (MAA replays it to derive the boot claims; here they are absent) and whether the
 * paravisor is Azure's (MAA's azure-compliant-cvm verdict; here every verified report gets it).
 */
export interface GuestOptions {
  trustedArks?: X509Certificate[]
  trustedAkCas?: X509Certificate[]
  sign(claims: Record<string, unknown>): Promise<string>
}

type Answer = { status: number; body: unknown }

class Refusal extends Error {}
const refuse = (message: string): never => {
  throw new Refusal(message)
}

const b64 = (s: unknown, what: string): Buffer => (typeof s === 'string' && s !== '' ? Buffer.from(s, 'base64') : refuse(`${what} is missing`))

function jsonAt(s: unknown, what: string): Record<string, unknown> {
  try {
    const v = JSON.parse(b64(s, what).toString('utf8')) as unknown
    if (v && typeof v === 'object' && !Array.isArray(v)) return v as Record<string, unknown>
  } catch (err) {
    if (err instanceof Refusal) throw err
  }
  return refuse(`${what} is not base64 of a JSON object`)
}

function verifySigned(ak: RsaPublic, attest: Buffer, signature: Buffer, what: string): void {
  if (!verify('sha256', attest, ak.key, signature)) refuse(`the ${what} signature does not verify with the attestation key`)
}

function checkAk(tpm: Record<string, unknown>, runtime: Record<string, unknown>, o: GuestOptions): RsaPublic {
  const ak = parseRsaPublic(b64(tpm.AikPub, 'TpmInfo.AikPub'), 'TpmInfo.AikPub')
  const hclAk = ((runtime.keys as JsonWebKey[] | undefined) ?? []).find((k) => (k as { kid?: string }).kid === 'HCLAkPub')
  if (!hclAk?.n || Buffer.from(hclAk.n, 'base64url').compare(ak.modulus) !== 0)
    refuse('TpmInfo.AikPub is not the HCLAkPub of the HCL report: the quote is not from the attested VM')
  const cert = new X509Certificate(b64(tpm.AikCert, 'TpmInfo.AikCert'))
  if (!cert.publicKey.equals(ak.key)) refuse('TpmInfo.AikCert certifies another key than TpmInfo.AikPub')
  if (o.trustedAkCas && !o.trustedAkCas.some((ca) => cert.checkIssued(ca) && cert.verify(ca.publicKey))) refuse('TpmInfo.AikCert is not issued by a trusted vTPM CA')
  return ak
}

function checkQuote(tpm: Record<string, unknown>, ak: RsaPublic): Map<number, Buffer> {
  const pcrs = new Map<number, Buffer>(((tpm.PCRs as { Index: number; Digest: string }[] | undefined) ?? []).map((p) => [p.Index, b64(p.Digest, `PCR ${p.Index}`)]))
  const quoteBytes = b64(tpm.PcrQuote, 'TpmInfo.PcrQuote')
  verifySigned(ak, quoteBytes, b64(tpm.PcrSignature, 'TpmInfo.PcrSignature'), 'quote')
  const quote = parseAttestation(quoteBytes, 'TpmInfo.PcrQuote').quote ?? refuse('TpmInfo.PcrQuote is not a quote')
  const bank = quote.selections.find((s) => s.hash === TPM_ALG_SHA256)
  const set = [...pcrs.keys()].sort((a, b) => a - b)
  if (!bank || bank.pcrs.join(',') !== set.join(',')) refuse(`the quote selects PCRs ${bank?.pcrs.join(',') ?? '(no SHA-256 bank)'}, not the ${set.join(',')} sent`)
  if (!quote.pcrDigest.equals(pcrDigest(pcrs))) refuse('the PCR values sent are not the ones quoted')
  return pcrs
}

function checkEphemeralKey(tpm: Record<string, unknown>, ak: RsaPublic, pcrs: Map<number, Buffer>): RsaPublic {
  const key = parseRsaPublic(b64(tpm.EncKeyPub, 'TpmInfo.EncKeyPub'), 'TpmInfo.EncKeyPub')
  const info = b64(tpm.EncKeyCertifyInfo, 'TpmInfo.EncKeyCertifyInfo')
  verifySigned(ak, info, b64(tpm.EncKeyCertifyInfoSignature, 'TpmInfo.EncKeyCertifyInfoSignature'), 'ephemeral key certification')
  const certified = parseAttestation(info, 'TpmInfo.EncKeyCertifyInfo')
  if (certified.type !== TPM_ST_ATTEST_CERTIFY || !certified.certify?.name.equals(key.name)) refuse('TpmInfo.EncKeyCertifyInfo does not certify TpmInfo.EncKeyPub')
  const must = OBJECT.fixedTPM | OBJECT.fixedParent | OBJECT.sensitiveDataOrigin | OBJECT.decrypt
  const mustNot = OBJECT.sign | OBJECT.restricted | OBJECT.userWithAuth
  if ((key.attributes & must) !== must || (key.attributes & mustNot) !== 0) refuse('the ephemeral key is not a TPM-bound decryption key usable by policy only')
  if (!key.authPolicy.equals(policyPcrDigest(pcrs))) refuse('the ephemeral key is not bound by policy to the quoted PCR values')
  return key
}

function checkIsolation(info: Record<string, unknown>, o: GuestOptions): { verified: VerifiedReport; runtime: Record<string, unknown> } {
  const iso = (info.IsolationInfo ?? {}) as { Type?: string; Evidence?: { Proof?: string; RunTimeData?: string } }
  if (iso.Type !== 'SevSnp') refuse(`IsolationInfo.Type is ${String(iso.Type)}: this emulator attests SevSnp confidential VMs only`)
  const proof = jsonAt(iso.Evidence?.Proof, 'IsolationInfo.Evidence.Proof')
  const runtimeData = b64(iso.Evidence?.RunTimeData, 'IsolationInfo.Evidence.RunTimeData')
  let verified: VerifiedReport
  try {
    verified = verifyReport(b64(proof.SnpReport, 'Proof.SnpReport'), {
      chain: b64(proof.VcekCertChain, 'Proof.VcekCertChain').toString('utf8'),
      trustedArks: o.trustedArks,
      reportData: maaReportData(runtimeData),
    })
  } catch (err) {
    return refuse(`SNP report verification failed: ${(err as Error).message}`)
  }
  return { verified, runtime: jsonAt(runtimeData.toString('base64'), 'IsolationInfo.Evidence.RunTimeData') }
}

/** The claims MAA issues for a guest attestation of an SEV-SNP confidential VM. */
function guestClaims(
  info: Record<string, unknown>,
  verified: VerifiedReport,
  runtime: Record<string, unknown>,
  pcrs: Map<number, Buffer>,
  key: RsaPublic,
): Record<string, unknown> {
  const text = (v: unknown) => (typeof v === 'string' ? Buffer.from(v, 'base64').toString('utf8') : undefined)
  const jwk = key.key.export({ format: 'jwk' })
  return {
    'x-ms-attestation-type': 'azurevm',
    'x-ms-azurevm-attestation-protocol-ver': info.AttestationProtocolVersion,
    'x-ms-azurevm-attested-pcrs': [...pcrs.keys()].sort((a, b) => a - b),
    'x-ms-azurevm-ostype': text(info.OSType),
    'x-ms-azurevm-osdistro': text(info.OSDistro),
    'x-ms-azurevm-osversion-major': Number(info.OSVersionMajor),
    'x-ms-azurevm-osversion-minor': Number(info.OSVersionMinor),
    'x-ms-azurevm-vmid': (runtime['vm-configuration'] as { vmUniqueId?: string } | undefined)?.vmUniqueId,
    'x-ms-isolation-tee': { ...snpClaims(verified.report), 'x-ms-compliance-status': 'azure-compliant-cvm', 'x-ms-runtime': runtime },
    'x-ms-runtime': { keys: [{ kid: 'TpmEphemeralEncryptionKey', kty: 'RSA', key_ops: ['encrypt'], e: jwk.e, n: jwk.n }] },
  }
}

/** The token under AES-256-GCM, its key under RSAES-PKCS1-v1_5 to the ephemeral key: what only that vTPM opens. */
function encryptToken(token: string, key: RsaPublic): string {
  const inner = randomBytes(32)
  const iv = randomBytes(12)
  try {
    const c = createCipheriv('aes-256-gcm', inner, iv)
    c.setAAD(GUEST_TOKEN_AAD)
    const jwt = Buffer.concat([c.update(token, 'utf8'), c.final()])
    const body = {
      EncryptedInnerKey: publicEncrypt({ key: key.key, padding: constants.RSA_PKCS1_PADDING }, inner).toString('base64'),
      EncryptionParams: { Iv: iv.toString('base64'), BlockMode: 'ChainingModeGCM', BlockPadding: 'PKCS7', Cipher: 'AES', KeySizeInBits: 256 },
      AuthenticationData: c.getAuthTag().toString('base64'),
      Jwt: jwt.toString('base64'),
    }
    return Buffer.from(JSON.stringify(body)).toString('base64url')
  } finally {
    inner.fill(0)
  }
}

/** Verifies an AzureGuest request and answers MAA's encrypted token, or the 400 MAA would answer. */
export async function attestGuest(body: Buffer, o: GuestOptions): Promise<Answer> {
  let claims: Record<string, unknown>
  let key: RsaPublic
  try {
    const info = jsonAt((JSON.parse(body.toString('utf8')) as { AttestationInfo?: unknown }).AttestationInfo, 'AttestationInfo')
    const { verified, runtime } = checkIsolation(info, o)
    const tpm = (info.TpmInfo ?? {}) as Record<string, unknown>
    const ak = checkAk(tpm, runtime, o)
    const pcrs = checkQuote(tpm, ak)
    key = checkEphemeralKey(tpm, ak, pcrs)
    claims = guestClaims(info, verified, runtime, pcrs, key)
  } catch (err) {
    const message = err instanceof SyntaxError ? 'the request body is not JSON' : (err as Error).message
    return { status: 400, body: { error: { code: 'InvalidParameter', message: `guest attestation failed: ${message}` } } }
  }
  const token = await o.sign(claims)
  return { status: 200, body: { token: encryptToken(token, key) } }
}
