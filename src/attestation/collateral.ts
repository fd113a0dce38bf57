import { silentLogger, type Logger } from '../log/logger.js'
import type { CertCache } from './cert-fetch.js'
import { AttestationError } from './errors.js'
import { fetchCertChain, fetchLocalThim, type FetchedChain, type FetchOptions } from './cert-fetch.js'
import { parseTcbm, thimAbsent, thimChainPem } from './thim.js'
import type { UvmInformation } from './uvm-info.js'
import type { SnpReport } from './report.js'

const hex = (v: bigint) => v.toString(16).padStart(16, '0')

/** What skr's -allowTestingMismatchedTCB makes of the host certificate's TCBM. */
const TESTING_TCBM = 0xffffffffn

export interface CollateralOptions {
  uvm?: UvmInformation
  certcache?: CertCache
  fetch?: FetchOptions
  logger?: Logger
  /**
   * Testing only (skr's -allowTestingMismatchedTCB): the host certificate claims TCBM ffffffff, so
   * no report matches it and the first chain comes from the certcache, as after a TCB update.
   */
  testingMismatchedTcb?: boolean
}

/**
 * The VCEK chain MAA needs for a report (docs/attestation.md#certificate-sources): the platform's host certificate when its
 * TCBM matches the report, else the configured certcache (AMD KDS, AzCache or a THIM endpoint),
 * else the local THIM endpoint. The chain last fetched is kept for the next report.
 */
export class Collateral {
  private current?: FetchedChain
  private readonly logger: Logger

  constructor(private readonly o: CollateralOptions) {
    this.logger = o.logger ?? silentLogger
    const host = o.uvm?.hostAmdCertificate
    if (host && !thimAbsent(host)) {
      try {
        const tcbm = o.testingMismatchedTcb ? TESTING_TCBM : parseTcbm(host.tcbm, 'the host AMD certificate')
        this.current = { chainPem: thimChainPem(host), tcbm }
      } catch (err) {
        this.logger.warn({ err }, 'ignoring the host AMD certificate')
      }
    }
  }

  async chainFor(report: SnpReport): Promise<FetchedChain> {
    const wanted = report.reportedTcb.value
    if (this.current?.tcbm === wanted) return this.current
    const tried: string[] = []
    if (this.current) tried.push(`host certificate (TCBM ${hex(this.current.tcbm)})`)
    const fetchOpts = { ...this.o.fetch, logger: this.logger }
    const sources: [string, () => Promise<FetchedChain>][] = this.o.certcache?.endpoint_type
      ? [[`certcache ${this.o.certcache.endpoint_type} ${this.o.certcache.endpoint ?? ''}`.trim(), () => fetchCertChain(this.o.certcache!, report, fetchOpts)]]
      : [['local THIM', () => fetchLocalThim(undefined, fetchOpts)]]
    for (const [name, fetchChain] of sources) {
      let chain: FetchedChain
      try {
        chain = await fetchChain()
      } catch (err) {
        tried.push(`${name}: ${(err as Error).message}`)
        continue
      }
      if (chain.tcbm !== wanted) {
        throw new AttestationError('ATTEST_TCB_MISMATCH', `SNP reported TCB value ${hex(wanted)} does not match the certificate TCB value ${hex(chain.tcbm)} from ${name}`)
      }
      this.logger.info({ source: name, tcbm: hex(chain.tcbm) }, 'VCEK certificate chain obtained')
      this.current = chain
      return chain
    }
    throw new AttestationError(
      'ATTEST_NO_CERTIFICATES',
      `no VCEK certificate chain for TCB ${hex(wanted)}: tried ${tried.join('; ') || 'nothing'}. Set UVM_HOST_AMD_CERTIFICATE or azure_info.certcache (e.g. AzCache global.acccache.azure.net)`,
    )
  }
}
