import { access } from 'node:fs/promises'
import { silentLogger, type Logger } from '../../log/logger.js'
import { AttestationError } from '../errors.js'
import { deviceProvider } from './device.js'
import { simulatedProvider, type SimulatedOptions } from './simulated.js'
import { tsmProvider, TSM_REPORT_ROOT } from './tsm.js'
import { ATTESTATION_MODES, type AttestationMode, type ReportProvider } from './provider.js'
import { readHclReport, vtpmProvider } from './vtpm.js'
import { DEFAULT_TCTI, Vtpm } from '../../tpm/vtpm.js'

export interface SelectOptions {
  logger?: Logger
  /** Overrides for tests: where each source lives. */
  paths?: { sevGuest?: string; sev?: string; tsm?: string; tpmrm?: string }
  simulated?: SimulatedOptions
  /** The TPM of `--attestation vtpm` (a tpm2-tss TCTI); default device:/dev/tpmrm0. */
  tpmTcti?: string
}

const exists = (p: string) =>
  access(p).then(
    () => true,
    () => false,
  )

/** Whether the TPM holds an HCL report that parses and binds: an Azure confidential VM's vTPM. */
async function holdsHclReport(tcti: string, logger: Logger): Promise<boolean> {
  try {
    await readHclReport(new Vtpm(tcti))
    return true
  } catch (err) {
    logger.debug({ tcti, reason: (err as Error).message }, 'the TPM holds no usable HCL report')
    return false
  }
}

/**
 * The report provider for `--attestation`. `auto` takes the first source present, in the order
 * /dev/sev-guest, /dev/sev, the vTPM of a confidential VM (/dev/tpmrm0 holding an HCL report),
 * configfs-tsm, and never falls back to a simulated report.
 */
export async function selectProvider(mode: string, o: SelectOptions = {}): Promise<ReportProvider> {
  const logger = o.logger ?? silentLogger
  if (!(ATTESTATION_MODES as readonly string[]).includes(mode)) {
    throw new AttestationError('ATTEST_MODE_INVALID', `unknown attestation mode "${mode}": use one of ${ATTESTATION_MODES.join(', ')}`)
  }
  const paths = { sevGuest: o.paths?.sevGuest ?? '/dev/sev-guest', sev: o.paths?.sev ?? '/dev/sev', tsm: o.paths?.tsm ?? TSM_REPORT_ROOT, tpmrm: o.paths?.tpmrm ?? '/dev/tpmrm0' }
  const tcti = o.tpmTcti || DEFAULT_TCTI
  const m = mode as AttestationMode
  if (m === 'vtpm') return vtpmProvider(tcti, { logger })
  if (m === 'sev-guest') return deviceProvider('sev-guest', paths.sevGuest)
  if (m === 'sev') return deviceProvider('sev', paths.sev)
  if (m === 'tsm') return tsmProvider(paths.tsm)
  if (m === 'simulated') {
    logger.warn('attestation is SIMULATED (--attestation simulated): for the local stack and tests only')
    return simulatedProvider({ ...o.simulated, logger })
  }
  const candidates: [string, () => ReportProvider][] = [
    [paths.sevGuest, () => deviceProvider('sev-guest', paths.sevGuest)],
    [paths.sev, () => deviceProvider('sev', paths.sev)],
    [paths.tpmrm, () => vtpmProvider(tcti, { logger })],
    [paths.tsm, () => tsmProvider(paths.tsm)],
  ]
  for (const [p, make] of candidates) {
    if ((await exists(p)) && (p !== paths.tpmrm || (await holdsHclReport(tcti, logger)))) {
      const provider = make()
      logger.info({ provider: provider.name, location: p }, 'attestation report provider')
      return provider
    }
  }
  throw new AttestationError(
    'ATTEST_NO_PROVIDER',
    `no SEV-SNP report source found (looked for ${candidates.map(([p]) => (p === paths.tpmrm ? `an HCL report in ${p}` : p)).join(', ')}): this is not an SEV-SNP guest, or the device is not mapped into the container. For the local stack use --attestation simulated.`,
  )
}
