import { silentLogger, type Logger } from '../log/logger.js'
import type { CertCache } from './cert-fetch.js'
import { readUvmInformation, type UvmInformation } from './uvm-info.js'
import { Collateral } from './collateral.js'
import { selectProvider } from './providers/select.js'
import type { ReportProvider } from './providers/provider.js'
import { policyHostData } from './report-data.js'
import { thimAbsent } from './thim.js'
import type { SimulatedProvider } from './providers/simulated.js'

function isSimulated(p: ReportProvider): p is SimulatedProvider {
  return p.name === 'simulated' && typeof (p as Partial<SimulatedProvider>).thimCerts === 'function'
}

export interface AttestationSetup {
  provider: ReportProvider
  uvm: UvmInformation
  collateral: Collateral
}

export interface AttestationContextOptions {
  attestation: string
  simulatedStateDir?: string
  /** The TPM of --attestation vtpm (and auto on a confidential VM): a tpm2-tss TCTI. */
  tpmTcti?: string
  certcache?: CertCache
  logger?: Logger
  /** UVM information given instead of read from the environment (tests). */
  uvm?: UvmInformation
  /** A report provider given instead of selected from `attestation` (tests). */
  provider?: ReportProvider
  /** skr's -allowTestingMismatchedTCB (see Collateral). */
  testingMismatchedTcb?: boolean
}

/**
 * The report provider, UVM information and certificate source, set up on first use and shared
 * by key release for filesystems and the HTTP API. A failed set-up is retried on the next use.
 */
export class AttestationContext {
  private setup?: Promise<AttestationSetup>
  private current?: AttestationSetup

  constructor(private readonly o: AttestationContextOptions) {}

  ready(): Promise<AttestationSetup> {
    this.setup ??= (async () => {
      const logger = this.o.logger ?? silentLogger
      let uvm = this.o.uvm ?? (await readUvmInformation({ logger }))
      const hostData = uvm.securityPolicy ? policyHostData(uvm.securityPolicy) : undefined
      const provider =
        this.o.provider ?? (await selectProvider(this.o.attestation, { logger, tpmTcti: this.o.tpmTcti, simulated: { stateDir: this.o.simulatedStateDir, hostData } }))
      // The simulated chip is its own platform: with no certificate configured, its chain is the collateral.
      if (isSimulated(provider) && thimAbsent(uvm.hostAmdCertificate) && !this.o.certcache?.endpoint_type) {
        uvm = { ...uvm, hostAmdCertificate: await provider.thimCerts() }
        logger.warn(
          { stateDir: provider.location },
          "no UVM_HOST_AMD_CERTIFICATE, security-context certificate or certcache: using the simulated chip's own VCEK chain as the certificate collateral",
        )
      }
      this.current = { provider, uvm, collateral: new Collateral({ uvm, certcache: this.o.certcache, logger, testingMismatchedTcb: this.o.testingMismatchedTcb }) }
      return this.current
    })()
    this.setup.catch(() => {
      this.setup = undefined
    })
    return this.setup
  }

  /** What /status shows: the provider once chosen. */
  describe(): { mode: string; provider?: string; location?: string } {
    return { mode: this.o.attestation, ...(this.current ? { provider: this.current.provider.name, location: this.current.provider.location } : {}) }
  }
}
