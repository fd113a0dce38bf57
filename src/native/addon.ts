import { addonLoader, loadProblem } from '../process/load-addon.js'

export interface NativeAddon {
  getReport(kind: 'sev-guest' | 'sev', path: string, reportData: Buffer): Promise<{ report: Buffer; reportSize: number }>
  layout(): Record<string, number>
  /** AES-XTS over whole data units in one call, IV = sector number (plain64) or its low 32 bits (plain). */
  xtsCrypt(encrypt: boolean, key: Buffer, input: Buffer, output: Buffer, firstSector: number, unitSize: number, plain64: boolean): void
  /** SHA-256(salt || block) of every `blockSize` block of `input`, 32 bytes each into `output`. */
  sha256Blocks(salt: Buffer, input: Buffer, blockSize: number, output: Buffer): void
  /** The same on the libuv thread pool; the buffers must not be touched until it resolves. */
  sha256BlocksAsync(salt: Buffer, input: Buffer, blockSize: number, output: Buffer): Promise<void>
}

/** The addon built from native/ by the README's set-up (npm run build:native). */
export const loadAddon = addonLoader<NativeAddon>({
  file: '../../../native/build/Release/encfs_snp_crypto.node',
  code: 'NATIVE_ADDON_MISSING',
  notBuilt: 'the native addon is not built: run npm run setup (it needs g++, make and python3)',
  notLoading: 'the native addon does not load: run npm run setup again (it needs g++, make and python3)',
})

/** The addon when it loads, else undefined (callers with a pure-JS path use this). */
export function optionalAddon(): NativeAddon | undefined {
  return loadProblem(loadAddon) === undefined ? loadAddon() : undefined
}
