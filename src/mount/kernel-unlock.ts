import type { CommandRunner } from '../process/run.js'
import type { Logger } from '../log/logger.js'
import { MountError } from './errors.js'
import { LuksError } from '../luks/errors.js'

export function mapperName(index: number): string {
  return `remote-crypt-${index}`
}

export interface CryptsetupOpenOptions {
  dataFile: string
  /** Detached copy of the header, served from the validated image (never a file on disk). */
  headerFile?: string
  name: string
  readOnly: boolean
  key: Buffer
  logger: Logger
  /** The header's version, validated by encfs: cryptsetup gets the image as it is (default luks2). */
  type?: 'luks1' | 'luks2'
}

/**
 * Maps the ciphertext through dm-crypt. The key goes on stdin with --key-file=- (without it
 * cryptsetup stops reading at the first newline byte, and the 32 random key bytes often have one).
 * If the attached header cannot be used (the Go sidecar saw this when cryptsetup tried to update
 * the header on the read-only file), retry with the detached header file.
 */
export async function cryptsetupOpen(run: CommandRunner, o: CryptsetupOpenOptions): Promise<string> {
  const base = ['open', '--type', o.type ?? 'luks2', '--key-file=-', ...(o.readOnly ? ['--readonly'] : [])]
  try {
    await run('cryptsetup', [...base, o.dataFile, o.name], { input: o.key, timeoutMs: 300_000 })
  } catch (first) {
    if ((first as { result?: { code: number } }).result?.code === 2) throw wrongKey(first)
    if (!o.headerFile) throw openFailed(first)
    o.logger.warn({ err: first, name: o.name }, 'cryptsetup open failed with the attached header; retrying with the detached header')
    try {
      await run('cryptsetup', [...base, '--header', o.headerFile, o.dataFile, o.name], { input: o.key, timeoutMs: 300_000 })
    } catch (second) {
      if ((second as { result?: { code: number } }).result?.code === 2) throw wrongKey(second)
      throw openFailed(second)
    }
  }
  return `/dev/mapper/${o.name}`
}

/** The same error the userspace unlock gives for a key that opens no keyslot. */
function wrongKey(cause: unknown): LuksError {
  return new LuksError('LUKS_WRONG_KEY', 'cryptsetup: no keyslot of the image opens with the released key (was the image made with this key?)', { cause })
}

function openFailed(cause: unknown): MountError {
  return new MountError('CRYPTSETUP_OPEN_FAILED', `cryptsetup open failed: ${(cause as Error).message}`, { cause })
}

export async function cryptsetupClose(run: CommandRunner, name: string): Promise<void> {
  await run('cryptsetup', ['close', name], { timeoutMs: 120_000 })
}
