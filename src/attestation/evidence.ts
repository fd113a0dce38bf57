import { silentLogger, type Logger } from '../log/logger.js'
import type { ReportProvider } from './providers/provider.js'
import type { Collateral } from './collateral.js'
import type { FetchedChain } from './cert-fetch.js'
import { parseReport } from './report.js'
import { hasCode } from '../errors/encfs-error.js'
import { AttestationError } from './errors.js'
import { isVtpm } from './providers/vtpm.js'

export interface Evidence {
  /** The raw report the chain was matched to (never an earlier one). */
  report: Buffer
  /** The VCEK chain endorsing it, and its TCBM. */
  chain: FetchedChain
}

/**
 * An SNP report for `reportData` and the VCEK chain that endorses it: the one pipeline behind
 * /attest/combined, /attest/maa and key release. As Go does, when the chain fetched for the
 * report's TCB still has another TCB (a firmware update between the report and the fetch), it
 * takes one fresh report and matches again; unlike Go it returns the report that matched.
 */
export async function evidence(
  o: { provider: ReportProvider; collateral: Collateral },
  reportData: Buffer,
  opts: { logger?: Logger; signal?: AbortSignal } = {},
): Promise<Evidence> {
  const logger = opts.logger ?? silentLogger
  if (isVtpm(o.provider)) {
    throw new AttestationError(
      'ATTEST_VTPM_UNSUPPORTED',
      "on an Azure confidential VM (--attestation vtpm) the SNP report binds the HCL report's variable data, not the runtime data asked for, so MAA's SevSnpVm cannot accept it: key release works there (/key/release, remotefs), through MAA's guest attestation",
    )
  }
  let report = await o.provider.getReport(reportData, opts.signal)
  try {
    return { report, chain: await o.collateral.chainFor(parseReport(report)) }
  } catch (err) {
    if (!hasCode(err, 'ATTEST_TCB_MISMATCH')) throw err
    logger.warn({ reason: (err as Error).message }, 'the TCB moved while fetching certificates: retrying with a fresh report')
  }
  report = await o.provider.getReport(reportData, opts.signal)
  return { report, chain: await o.collateral.chainFor(parseReport(report)) }
}
