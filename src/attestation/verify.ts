import { verify as verifySignature, type KeyObject } from 'node:crypto'
import type { X509Certificate } from 'node:crypto'
import { AttestationError } from './errors.js'
import { parseReport, signatureComponent, SIGNED_LENGTH, type SnpReport } from './report.js'
import { parsePemChain, verifyAmdChain, type AmdChain } from './cert-chain.js'

/** ECDSA P-384 / SHA-384 over bytes 0x000..0x29F with the VCEK (or VLEK) key (docs/attestation.md#report-signature). */
export function verifyReportSignature(raw: Buffer, key: KeyObject): void {
  const algo = raw.readUInt32LE(0x34)
  if (algo !== 1) throw new AttestationError('ATTEST_REPORT_SIGNATURE', `unsupported signature algorithm ${algo} (1 = ECDSA P-384 with SHA-384)`)
  const sig = Buffer.concat([signatureComponent(raw, 0x2a0, 'R'), signatureComponent(raw, 0x2a0 + 72, 'S')])
  const ok = verifySignature('sha384', raw.subarray(0, SIGNED_LENGTH), { key, dsaEncoding: 'ieee-p1363' }, sig)
  if (!ok) throw new AttestationError('ATTEST_REPORT_SIGNATURE', 'the report signature does not verify with the VCEK: the report was altered or comes from another chip / TCB')
}

export interface VerifyOptions {
  /** VCEK, ASK, ARK as PEM (in that order), or parsed. */
  chain: string | X509Certificate[]
  trustedArks?: X509Certificate[]
  /** Expected REPORT_DATA (64 bytes), or its first bytes. */
  reportData?: Buffer
  /** Expected HOST_DATA (32 bytes). */
  hostData?: Buffer
  at?: Date
}

export interface VerifiedReport {
  report: SnpReport
  chain: AmdChain
}

/** Parses, checks the chain and the signature, then the expected report_data / host_data. */
export function verifyReport(raw: Buffer, o: VerifyOptions): VerifiedReport {
  const report = parseReport(raw)
  const certs = typeof o.chain === 'string' ? parsePemChain(o.chain) : o.chain
  const chain = verifyAmdChain(certs, { trustedArks: o.trustedArks, at: o.at })
  verifyReportSignature(raw, chain.vcek.publicKey)
  if (o.reportData) {
    const actual = raw.subarray(0x50, 0x50 + o.reportData.length)
    if (!actual.equals(o.reportData)) {
      throw new AttestationError(
        'ATTEST_REPORT_DATA_MISMATCH',
        `report_data ${actual.toString('hex')} does not match the expected ${o.reportData.toString('hex')} (the report was made for other runtime data)`,
      )
    }
  }
  if (o.hostData && !raw.subarray(0xc0, 0xe0).equals(o.hostData)) {
    throw new AttestationError(
      'ATTEST_HOST_DATA_MISMATCH',
      `host_data ${report.hostData} does not match the expected ${o.hostData.toString('hex')} (the pod runs another security policy)`,
    )
  }
  return { report, chain }
}
