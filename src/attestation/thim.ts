import { AttestationError } from './errors.js'
import { decodeGoStdBase64 } from '../encoding/base64.js'
import { parseJson } from '../encoding/json.js'

/** The THIM certificate JSON (docs/attestation.md#thim-json): the platform's VCEK, its TCBM and the ASK/ARK chain. */
export interface ThimCerts {
  vcekCert: string
  tcbm: string
  certificateChain: string
  cacheControl: string
}

function requireStdBase64(text: string, what: string): Buffer {
  const bytes = decodeGoStdBase64(text)
  if (!bytes) throw new AttestationError('ATTEST_BASE64', `${what} is not valid standard base64`)
  return bytes
}

export function parseThimJson(json: string, what: string): ThimCerts {
  const v = parseJson(json, (err) => new AttestationError('ATTEST_THIM_JSON', `${what} is not valid JSON: ${err.message.split(',')[0]}`, { cause: err }))
  if (typeof v !== 'object' || v === null) throw new AttestationError('ATTEST_THIM_JSON', `${what} is not a JSON object`)
  const o = v as Record<string, unknown>
  const str = (k: string): string => (typeof o[k] === 'string' ? (o[k] as string) : '')
  return { vcekCert: str('vcekCert'), tcbm: str('tcbm'), certificateChain: str('certificateChain'), cacheControl: str('cacheControl') }
}

/** The host AMD certificate as the platform passes it: standard base64 of THIM JSON. */
export function parseHostAmdCertificate(b64: string, what = 'the host AMD certificate'): ThimCerts {
  return parseThimJson(requireStdBase64(b64, what).toString('utf8'), what)
}

export function thimAbsent(c: ThimCerts | undefined): boolean {
  return !c || (c.vcekCert === '' && c.certificateChain === '')
}

/** The chain MAA gets: VCEK then ASK and ARK. */
export function thimChainPem(c: ThimCerts): string {
  return c.vcekCert + c.certificateChain
}

export function parseTcbm(tcbm: string, what: string): bigint {
  if (!/^[0-9a-fA-F]{1,16}$/.test(tcbm)) throw new AttestationError('ATTEST_TCBM_INVALID', `${what}: TCBM "${tcbm}" is not a hexadecimal 64-bit value`)
  return BigInt(`0x${tcbm}`)
}
