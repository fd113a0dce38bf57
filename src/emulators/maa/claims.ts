import type { SnpReport } from '../../attestation/report.js'

/** The SNP claims MAA puts in its token (docs/attestation.md#maa-token-claims), from a verified report. */
export function snpClaims(r: SnpReport): Record<string, unknown> {
  return {
    'x-ms-attestation-type': 'sevsnpvm',
    'x-ms-sevsnpvm-hostdata': r.hostData,
    'x-ms-sevsnpvm-is-debuggable': r.policyFlags.debugAllowed,
    'x-ms-sevsnpvm-smt-allowed': r.policyFlags.smtAllowed,
    'x-ms-sevsnpvm-migration-allowed': r.policyFlags.migrateMaAllowed,
    'x-ms-sevsnpvm-vmpl': r.vmpl,
    'x-ms-sevsnpvm-launchmeasurement': r.measurement,
    'x-ms-sevsnpvm-reportdata': r.reportData,
    'x-ms-sevsnpvm-reportid': r.reportId,
    'x-ms-sevsnpvm-familyId': r.familyId,
    'x-ms-sevsnpvm-imageId': r.imageId,
    'x-ms-sevsnpvm-idkeydigest': r.idKeyDigest,
    'x-ms-sevsnpvm-authorkeydigest': r.authorKeyDigest,
    'x-ms-sevsnpvm-guestsvn': r.guestSvn,
    'x-ms-sevsnpvm-bootloader-svn': r.reportedTcb.bootloader,
    'x-ms-sevsnpvm-tee-svn': r.reportedTcb.tee,
    'x-ms-sevsnpvm-snpfw-svn': r.reportedTcb.snp,
    'x-ms-sevsnpvm-microcode-svn': r.reportedTcb.microcode,
  }
}
