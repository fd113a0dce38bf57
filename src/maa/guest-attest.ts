import { createDecipheriv, type CipherGCMTypes } from 'node:crypto'
import { MaaError } from './errors.js'
import { postForToken, type MaaOptions } from './client.js'

/**
 * MAA's guest attestation of an Azure confidential VM (`POST /attest/AzureGuest`,
 * docs/key-release.md#cvm): the protocol of Azure's guest attestation library, version 2.0.
 * The evidence is the vTPM's (attestation key, its certificate, a PCR quote, an ephemeral
 * encryption key certified by the attestation key) next to the hardware's (the SNP report from
 * the HCL report and its variable data); MAA answers a token encrypted to the ephemeral key.
 */
export const GUEST_PROTOCOL_VERSION = '2.0'

export interface GuestEvidence {
  os: { type: 'Linux'; distro: string; versionMajor: number; versionMinor: number; build: string }
  /** The TCG event log of the boot (binary_bios_measurements); empty when the kernel exposes none. */
  tcgLog: Buffer
  akCert: Buffer
  /** TPM2B_PUBLIC of the attestation key. */
  akPub: Buffer
  /** TPMS_ATTEST of the quote and its raw RSASSA-SHA256 signature. */
  quote: Buffer
  quoteSignature: Buffer
  pcrs: Map<number, Buffer>
  /** TPM2B_PUBLIC of the ephemeral key, its certification (TPMS_ATTEST) and that signature. */
  encKeyPub: Buffer
  encKeyCertifyInfo: Buffer
  encKeyCertifyInfoSignature: Buffer
  snpReport: Buffer
  vcekCertChain: string
  /** The HCL report's variable data, whose SHA-256 the SNP report carries. */
  runtimeData: Buffer
}

const b64 = (b: Buffer) => b.toString('base64')

/** The AttestationInfo JSON, member names and encodings as Azure's guest attestation library sends them. */
export function guestAttestationInfo(e: GuestEvidence): Record<string, unknown> {
  const pcrs = [...e.pcrs.keys()].sort((a, b) => a - b)
  const proof = JSON.stringify({ SnpReport: e.snpReport.toString('base64url'), VcekCertChain: Buffer.from(e.vcekCertChain).toString('base64url') })
  return {
    AttestationProtocolVersion: GUEST_PROTOCOL_VERSION,
    OSType: b64(Buffer.from(e.os.type)),
    OSDistro: b64(Buffer.from(e.os.distro)),
    OSVersionMajor: e.os.versionMajor,
    OSVersionMinor: e.os.versionMinor,
    OSBuild: b64(Buffer.from(e.os.build)),
    TcgLogs: b64(e.tcgLog),
    ClientPayload: {},
    TpmInfo: {
      AikCert: b64(e.akCert),
      AikPub: b64(e.akPub),
      PcrQuote: b64(e.quote),
      PcrSignature: b64(e.quoteSignature),
      EncKeyPub: b64(e.encKeyPub),
      EncKeyCertifyInfo: b64(e.encKeyCertifyInfo),
      EncKeyCertifyInfoSignature: b64(e.encKeyCertifyInfoSignature),
      PcrSet: pcrs,
      PCRs: pcrs.map((p) => ({ Index: p, Digest: b64(e.pcrs.get(p)!) })),
    },
    IsolationInfo: { Type: 'SevSnp', Evidence: { Proof: b64(Buffer.from(proof)), RunTimeData: b64(e.runtimeData) } },
  }
}

/** MAA's answer to AzureGuest: the JWT under AES-GCM, its key under RSA to the ephemeral key. */
export interface EncryptedGuestToken {
  encryptedInnerKey: Buffer
  iv: Buffer
  tag: Buffer
  ciphertext: Buffer
  keyBits: number
}

/** Additional data of the token's AES-GCM, fixed by the protocol. */
export const GUEST_TOKEN_AAD = Buffer.from('Transport Key')

function member(o: Record<string, unknown>, name: string, where: string): string {
  const v = o[name]
  if (typeof v !== 'string' || v === '') throw new MaaError('MAA_BAD_ANSWER', `MAA's AzureGuest answer has no ${where}${name}`)
  return v
}

/** Reads the encrypted token (base64url JSON) MAA's AzureGuest answers with. */
export function parseEncryptedGuestToken(token: string): EncryptedGuestToken {
  let o: Record<string, unknown>
  try {
    o = JSON.parse(Buffer.from(token, 'base64url').toString('utf8')) as Record<string, unknown>
  } catch {
    throw new MaaError('MAA_BAD_ANSWER', "MAA's AzureGuest token is not base64url of the encrypted-token JSON (is the endpoint an attestation provider?)")
  }
  const params = (o.EncryptionParams ?? {}) as Record<string, unknown>
  const mode = params.BlockMode
  const cipher = params.Cipher
  if ((mode !== undefined && mode !== 'ChainingModeGCM') || (cipher !== undefined && cipher !== 'AES')) {
    throw new MaaError('MAA_BAD_ANSWER', `MAA's AzureGuest token is encrypted with ${String(cipher)} ${String(mode)}, not AES in GCM mode`)
  }
  return {
    encryptedInnerKey: Buffer.from(member(o, 'EncryptedInnerKey', ''), 'base64'),
    iv: Buffer.from(member(params, 'Iv', 'EncryptionParams.'), 'base64'),
    tag: Buffer.from(member(o, 'AuthenticationData', ''), 'base64'),
    ciphertext: Buffer.from(member(o, 'Jwt', ''), 'base64'),
    keyBits: typeof params.KeySizeInBits === 'number' ? params.KeySizeInBits : 256,
  }
}

/** The JWT inside, once the inner key is decrypted (by the TPM, with the ephemeral key). */
export function decryptGuestToken(t: EncryptedGuestToken, innerKey: Buffer): string {
  try {
    if (![16, 24, 32].includes(innerKey.length)) throw new Error(`the inner key has ${innerKey.length} bytes`)
    if (innerKey.length * 8 !== t.keyBits) throw new Error(`the inner key has ${innerKey.length * 8} bits, the answer says ${t.keyBits}`)
    const d = createDecipheriv(`aes-${innerKey.length * 8}-gcm` as CipherGCMTypes, innerKey, t.iv)
    d.setAAD(GUEST_TOKEN_AAD)
    d.setAuthTag(t.tag)
    return Buffer.concat([d.update(t.ciphertext), d.final()]).toString('utf8')
  } catch (err) {
    throw new MaaError('MAA_BAD_ANSWER', `MAA's AzureGuest token does not decrypt with its inner key: ${(err as Error).message}`, { cause: err })
  } finally {
    innerKey.fill(0)
  }
}

/** Sends the guest evidence; returns MAA's token still encrypted to the ephemeral key. */
export async function attestAzureGuest(e: GuestEvidence, o: MaaOptions): Promise<EncryptedGuestToken> {
  const body = JSON.stringify({ AttestationInfo: Buffer.from(JSON.stringify(guestAttestationInfo(e))).toString('base64url') })
  return parseEncryptedGuestToken(await postForToken(`https://${o.endpoint}/attest/AzureGuest?${o.apiVersion ?? 'api-version=2020-10-01'}`, body, o))
}
