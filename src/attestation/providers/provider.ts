/**
 * Where an SNP attestation report comes from; all providers return the raw 1184-byte report. On a
 * confidential VM (vtpm) its REPORT_DATA is the hash of the HCL variable data, which carries the
 * report data asked for as user data (providers/vtpm.ts).
 */
export interface ReportProvider {
  readonly name: 'sev-guest' | 'sev' | 'tsm' | 'vtpm' | 'simulated'
  /** Where it gets reports from (a device, a configfs directory, a state directory). */
  readonly location: string
  getReport(reportData: Buffer, signal?: AbortSignal): Promise<Buffer>
}

export type AttestationMode = 'auto' | ReportProvider['name']
export const ATTESTATION_MODES: readonly AttestationMode[] = ['auto', 'sev-guest', 'sev', 'tsm', 'vtpm', 'simulated']

/** REPORT_DATA is 64 bytes; shorter input is left-aligned and zero-padded, as get-snp-report does. */
export function reportDataBlock(data: Buffer): Buffer {
  if (data.length > 64) throw new RangeError(`report data is ${data.length} bytes; at most 64 fit in an SNP report`)
  const block = Buffer.alloc(64)
  data.copy(block)
  return block
}
