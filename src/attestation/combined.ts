import type { AttestationSetup } from './context.js'
import { maaReportData } from './report-data.js'
import { evidence } from './evidence.js'
import type { Logger } from '../log/logger.js'

/** What skr's /attest/combined and the keyprovider's GetAttestationData answer, in one shape. */
export interface CombinedEvidence {
  /** TCBM of the VCEK chain, 16 hex digits. */
  endorsedTcb: string
  /** Standard base64 of the PEM VCEK chain. */
  certs: string
  /** Standard base64 of the report. */
  report: string
  /** The UVM reference info as the platform gave it (standard base64). */
  uvmReferenceInfo: string
}

/** A report binding the runtime data (REPORT_DATA = SHA-256 ‖ 0³²) with the chain that endorses it. */
export async function combinedEvidence(setup: AttestationSetup, runtimeData: Buffer, opts: { signal?: AbortSignal; logger?: Logger } = {}): Promise<CombinedEvidence> {
  const { report, chain } = await evidence(setup, maaReportData(runtimeData), opts)
  return {
    endorsedTcb: chain.tcbm.toString(16).padStart(16, '0'),
    certs: Buffer.from(chain.chainPem).toString('base64'),
    report: report.toString('base64'),
    uvmReferenceInfo: setup.uvm.referenceInfo,
  }
}
