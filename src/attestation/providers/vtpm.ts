import { setTimeout as sleep } from 'node:timers/promises'
import { silentLogger, type Logger } from '../../log/logger.js'
import { AZURE_VTPM, Vtpm } from '../../tpm/vtpm.js'
import { AttestationError } from '../errors.js'
import { checkHclBinding, parseHclReport, type HclReport } from '../hcl-report.js'
import { reportDataBlock, type ReportProvider } from './provider.js'

export interface VtpmOptions {
  logger?: Logger
  /** How long the paravisor may take to put fresh user data into the HCL report (default 10 s). */
  refreshTimeoutMs?: number
  pollMs?: number
}

export interface FreshHclReport {
  /** The NV index as read (padded after header.reportSize). */
  raw: Buffer
  hcl: HclReport
}

export interface VtpmProvider extends ReportProvider {
  readonly name: 'vtpm'
  readonly tpm: Vtpm
  /** An HCL report whose variable data carries `userData` (64 bytes) and binds to REPORT_DATA. */
  hclReport(userData: Buffer, signal?: AbortSignal): Promise<FreshHclReport>
}

export function isVtpm(p: ReportProvider): p is VtpmProvider {
  return p.name === 'vtpm'
}

/** Reads and checks the HCL report as it is in the vTPM now. */
export async function readHclReport(tpm: Vtpm): Promise<FreshHclReport> {
  const raw = await tpm.nvRead(AZURE_VTPM.hclReport, 'the HCL report')
  const hcl = parseHclReport(raw, `the HCL report in NV index 0x01400001 of ${tpm.tcti}`)
  checkHclBinding(hcl, `the HCL report in NV index 0x01400001 of ${tpm.tcti}`)
  return { raw, hcl }
}

/**
 * The vTPM of an Azure confidential VM (no /dev/sev-guest there): the SNP report comes inside the
 * paravisor's HCL report. Writing 64 bytes to NV index 0x01400002 makes the paravisor refresh it
 * with those bytes as `user-data` in the variable data, whose hash is REPORT_DATA; the report is
 * read again until it shows them (docs/attestation.md#vtpm).
 */
export function vtpmProvider(tcti: string, o: VtpmOptions = {}): VtpmProvider {
  const logger = o.logger ?? silentLogger
  const tpm = new Vtpm(tcti)
  const timeout = o.refreshTimeoutMs ?? 10_000
  const hclReport = async (userData: Buffer, signal?: AbortSignal): Promise<FreshHclReport> => {
    const block = reportDataBlock(userData)
    await tpm.nvWrite(AZURE_VTPM.userData, block, 'the HCL report user data')
    const started = Date.now()
    for (let attempt = 1; ; attempt++) {
      const fresh = await readHclReport(tpm)
      const seen = fresh.hcl.userData
      if (!seen) {
        logger.warn({ tcti }, 'this paravisor does not echo user data in the HCL report: its freshness cannot be checked')
        return fresh
      }
      if (seen.equals(block)) {
        logger.debug({ attempt, ms: Date.now() - started }, 'fresh HCL report read from the vTPM')
        return fresh
      }
      if (Date.now() - started >= timeout) {
        throw new AttestationError(
          'ATTEST_HCL_STALE',
          `the HCL report in ${tcti} still carries other user data ${timeout} ms after writing NV index 0x01400002 (another process writing it at the same time?)`,
        )
      }
      await sleep(o.pollMs ?? 100, undefined, { signal })
    }
  }
  return {
    name: 'vtpm',
    location: tcti,
    tpm,
    hclReport,
    async getReport(reportData: Buffer, signal?: AbortSignal): Promise<Buffer> {
      return (await hclReport(reportData, signal)).hcl.snpReport
    },
  }
}
