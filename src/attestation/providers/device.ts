import { loadAddon as loadNative, type NativeAddon } from '../../native/addon.js'
import { AttestationError } from '../errors.js'
import { reportDataBlock, type ReportProvider } from './provider.js'

interface NativeError extends Error {
  errno: number
  syscall: string
  status: number
  fwError: number
  vmmError: number
}

/** The report ioctls live in the native addon; a missing addon is an attestation error here. */
function reportAddon(): NativeAddon {
  try {
    return loadNative()
  } catch (err) {
    throw new AttestationError('ATTEST_ADDON_MISSING', (err as Error).message, { cause: err })
  }
}

/** Firmware status names (include/uapi/linux/psp-sev.h) for the values a report request can return. */
const FW_STATUS = new Map<number, string>([
  [0x01, 'INVALID_PLATFORM_STATE'],
  [0x02, 'INVALID_GUEST_STATE'],
  [0x07, 'INVALID_ADDRESS'],
  [0x0d, 'INVALID_LENGTH'],
  [0x16, 'INVALID_PARAM'],
  [0x17, 'RESOURCE_LIMIT'],
  [0x1f, 'AEAD_OFLOW'],
  [0x27, 'INVALID_KEY'],
])
const VMM_ERROR: Record<number, string> = { 1: 'INVALID_LEN', 2: 'BUSY' }

/** Turns what the addon reports into an error a user can act on. */
export function deviceError(err: NativeError, name: string, path: string): AttestationError {
  const code = { 2: 'ENOENT', 13: 'EACCES', 1: 'EPERM', 25: 'ENOTTY', 22: 'EINVAL', 5: 'EIO', 16: 'EBUSY' }[err.errno] ?? `errno ${err.errno}`
  if (err.errno === 2)
    return new AttestationError('ATTEST_DEVICE_MISSING', `${path} does not exist: this is not an SEV-SNP guest with the ${name} driver (try --attestation auto)`, { cause: err })
  if (err.errno === 13 || err.errno === 1)
    return new AttestationError('ATTEST_DEVICE_PERMISSION', `no permission to open ${path}: run the container privileged or with the device mapped (${code})`, { cause: err })
  if (err.errno === 25 && err.syscall === 'ioctl') {
    return new AttestationError(
      'ATTEST_DEVICE_FAILED',
      `${path}: the driver refuses report requests (ENOTTY): after a failed request the kernel wipes the guest key (VMPCK) until the VM restarts, or ${path} is not the ${name} interface`,
      { cause: err },
    )
  }
  const fw = err.fwError ? ` firmware error 0x${err.fwError.toString(16)} ${FW_STATUS.get(err.fwError) ?? ''}`.trimEnd() : ''
  const vmm = err.vmmError ? ` host error ${VMM_ERROR[err.vmmError] ?? err.vmmError}` : ''
  if (err.errno === 0 && err.status !== 0) {
    return new AttestationError('ATTEST_FIRMWARE_ERROR', `${path}: the SEV firmware answered status 0x${err.status.toString(16)} ${FW_STATUS.get(err.status) ?? ''}`.trimEnd(), {
      cause: err,
    })
  }
  return new AttestationError('ATTEST_DEVICE_FAILED', `${path}: ${err.syscall} failed with ${code}${fw}${vmm}`, { cause: err })
}

/** `/dev/sev-guest` (upstream SNP_GET_REPORT) or the Azure 5.15 `/dev/sev` interface. */
export function deviceProvider(name: 'sev-guest' | 'sev', path = name === 'sev' ? '/dev/sev' : '/dev/sev-guest'): ReportProvider {
  return {
    name,
    location: path,
    async getReport(reportData: Buffer): Promise<Buffer> {
      const native = reportAddon()
      const block = reportDataBlock(reportData)
      try {
        const { report } = await native.getReport(name, path, block)
        return report
      } catch (err) {
        if (typeof (err as Partial<NativeError>).errno !== 'number') throw err
        throw deviceError(err as NativeError, name, path)
      }
    },
  }
}

/** The addon, for tests of its compiled ABI. */
export function loadAddon(): NativeAddon {
  return reportAddon()
}
