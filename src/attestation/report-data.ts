import { createHash } from 'node:crypto'

/** REPORT_DATA for MAA: SHA-256 of the runtime data, then 32 zero bytes (docs/attestation.md#report-data-and-host-data). */
export function maaReportData(runtimeData: Buffer): Buffer {
  return Buffer.concat([createHash('sha256').update(runtimeData).digest(), Buffer.alloc(32)])
}

/** HOST_DATA of a pod: SHA-256 of its security policy (base64-decoded), the policy digest. */
export function policyHostData(policyBase64: string): Buffer {
  return createHash('sha256')
    .update(Buffer.from(policyBase64.replace(/\s+/g, ''), 'base64'))
    .digest()
}
