import type { CommandRunner } from '../process/run.js'
import type { Logger } from '../log/logger.js'
import { MountError } from './errors.js'

export function verityMapperName(index: number): string {
  return `remote-verity-${index}`
}

export interface VeritysetupOpenOptions {
  /** The data area (FUSE file). */
  dataFile: string
  /** The hash area, superblock first (FUSE file). */
  hashFile: string
  name: string
  rootHash: string
  logger: Logger
}

/**
 * Maps the image through dm-verity, so the kernel checks every block against the pinned root
 * as dm-crypt reads it (dm-crypt is then opened on the mapping). Corruption fails the I/O with
 * EIO, veritysetup's default; the root hash is public and goes on the command line.
 */
export async function veritysetupOpen(run: CommandRunner, o: VeritysetupOpenOptions): Promise<string> {
  try {
    await run('veritysetup', ['open', o.dataFile, o.name, o.hashFile, o.rootHash], { timeoutMs: 120_000 })
  } catch (err) {
    throw new MountError(
      'VERITYSETUP_OPEN_FAILED',
      `veritysetup open failed (the hash tree does not match verity.root_hash, or dm-verity is missing from the kernel): ${(err as Error).message}`,
      { cause: err },
    )
  }
  o.logger.info({ name: o.name }, 'dm-verity mapping opened')
  return `/dev/mapper/${o.name}`
}

export async function veritysetupClose(run: CommandRunner, name: string): Promise<void> {
  await run('veritysetup', ['close', name], { timeoutMs: 120_000 })
}
