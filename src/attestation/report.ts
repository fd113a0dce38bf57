import { AttestationError } from './errors.js'
import { parseTcb, type TcbVersion } from './tcb.js'

export const REPORT_SIZE = 0x4a0
/** The signature covers bytes 0x000..0x29F (docs/attestation.md#report-signature). */
export const SIGNED_LENGTH = 0x2a0

/** Every field of an SNP ATTESTATION_REPORT (AMD ABI 56860; docs/attestation.md#report-layout), byte arrays as lowercase hex. */
export interface SnpReport {
  version: number
  guestSvn: number
  policy: bigint
  policyFlags: { abiMinor: number; abiMajor: number; smtAllowed: boolean; migrateMaAllowed: boolean; debugAllowed: boolean; singleSocket: boolean }
  familyId: string
  imageId: string
  vmpl: number
  signatureAlgo: number
  currentTcb: TcbVersion
  platformInfo: bigint
  platformFlags: { smtEnabled: boolean; tsmeEnabled: boolean }
  signerInfo: { authorKeyEn: boolean; maskChipKey: boolean; signingKey: 'vcek' | 'vlek' | 'none' | `reserved(${number})`; raw: number }
  reportData: string
  measurement: string
  hostData: string
  idKeyDigest: string
  authorKeyDigest: string
  reportId: string
  reportIdMa: string
  reportedTcb: TcbVersion
  /** CPUID family/model/stepping: version 3 and later, undefined before. */
  cpuid?: { family: number; model: number; stepping: number }
  chipId: string
  committedTcb: TcbVersion
  currentVersion: { major: number; minor: number; build: number }
  committedVersion: { major: number; minor: number; build: number }
  launchTcb: TcbVersion
  /** Version 5 and later; undefined before. */
  launchMitVector?: bigint
  currentMitVector?: bigint
  /** R and S as stored: 72 bytes each, little-endian (signatureComponent converts them). */
  signature: { r: string; s: string }
}

const hex = (b: Buffer, off: number, len: number): string => b.subarray(off, off + len).toString('hex')

function signingKey(bits: number): SnpReport['signerInfo']['signingKey'] {
  if (bits === 0) return 'vcek'
  if (bits === 1) return 'vlek'
  if (bits === 7) return 'none'
  return `reserved(${bits})`
}

/** A 72-byte little-endian field of the signature, as 48 big-endian bytes; the rest must be zero. */
export function signatureComponent(raw: Buffer, offset: number, what: string): Buffer {
  const be = Buffer.from(raw.subarray(offset, offset + 72)).reverse()
  if (be.subarray(0, 24).some((x) => x !== 0)) throw new AttestationError('ATTEST_REPORT_SIGNATURE', `signature ${what} does not fit P-384 (its top 24 bytes are not zero)`)
  return be.subarray(24)
}

/**
 * Parses a report. Unknown versions are accepted and only the fields their version
 * defines are interpreted; verification always uses the raw bytes, never a re-serialisation.
 */
export function parseReport(raw: Buffer): SnpReport {
  if (raw.length !== REPORT_SIZE) {
    throw new AttestationError('ATTEST_REPORT_SIZE', `invalid SNP report size: ${raw.length} bytes, expected ${REPORT_SIZE} (is it hex? decode it first)`)
  }
  const version = raw.readUInt32LE(0)
  // Version 1 shares version 2's layout (the Go fake-report template claims 1); 0 is not a report.
  if (version < 1) throw new AttestationError('ATTEST_REPORT_VERSION', `unsupported SNP report version ${version}: not an SNP attestation report`)
  const policy = raw.readBigUInt64LE(0x08)
  const platformInfo = raw.readBigUInt64LE(0x40)
  const signer = raw.readUInt32LE(0x48)
  const bit = (v: bigint, n: number): boolean => ((v >> BigInt(n)) & 1n) === 1n
  const sig = raw.subarray(0x2a0)
  return {
    version,
    guestSvn: raw.readUInt32LE(0x04),
    policy,
    policyFlags: {
      abiMinor: Number(policy & 0xffn),
      abiMajor: Number((policy >> 8n) & 0xffn),
      smtAllowed: bit(policy, 16),
      migrateMaAllowed: bit(policy, 18),
      debugAllowed: bit(policy, 19),
      singleSocket: bit(policy, 20),
    },
    familyId: hex(raw, 0x10, 16),
    imageId: hex(raw, 0x20, 16),
    vmpl: raw.readUInt32LE(0x30),
    signatureAlgo: raw.readUInt32LE(0x34),
    currentTcb: parseTcb(raw.subarray(0x38, 0x40)),
    platformInfo,
    platformFlags: { smtEnabled: bit(platformInfo, 0), tsmeEnabled: bit(platformInfo, 1) },
    signerInfo: { authorKeyEn: (signer & 1) === 1, maskChipKey: (signer & 2) === 2, signingKey: signingKey((signer >> 2) & 7), raw: signer },
    reportData: hex(raw, 0x50, 64),
    measurement: hex(raw, 0x90, 48),
    hostData: hex(raw, 0xc0, 32),
    idKeyDigest: hex(raw, 0xe0, 48),
    authorKeyDigest: hex(raw, 0x110, 48),
    reportId: hex(raw, 0x140, 32),
    reportIdMa: hex(raw, 0x160, 32),
    reportedTcb: parseTcb(raw.subarray(0x180, 0x188)),
    ...(version >= 3 ? { cpuid: { family: raw[0x188]!, model: raw[0x189]!, stepping: raw[0x18a]! } } : {}),
    chipId: hex(raw, 0x1a0, 64),
    committedTcb: parseTcb(raw.subarray(0x1e0, 0x1e8)),
    currentVersion: { build: raw[0x1e8]!, minor: raw[0x1e9]!, major: raw[0x1ea]! },
    committedVersion: { build: raw[0x1ec]!, minor: raw[0x1ed]!, major: raw[0x1ee]! },
    launchTcb: parseTcb(raw.subarray(0x1f0, 0x1f8)),
    ...(version >= 5 ? { launchMitVector: raw.readBigUInt64LE(0x1f8), currentMitVector: raw.readBigUInt64LE(0x200) } : {}),
    signature: { r: hex(sig, 0, 72), s: hex(sig, 72, 72) },
  }
}

/** Reads a report given as binary or as hex text (what get-snp-report prints). */
export function decodeReportInput(input: Buffer): Buffer {
  if (input.length === REPORT_SIZE) return input
  const text = input.toString('latin1').replace(/\s+/g, '')
  if (/^[0-9a-fA-F]+$/.test(text) && text.length === REPORT_SIZE * 2) return Buffer.from(text, 'hex')
  throw new AttestationError('ATTEST_REPORT_SIZE', `not an SNP report: ${input.length} bytes, neither ${REPORT_SIZE} binary bytes nor ${REPORT_SIZE * 2} hex digits`)
}
