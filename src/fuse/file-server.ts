import type { RangeSource, WritableRangeSource } from '../storage/range-source.js'
import type { Logger } from '../log/logger.js'
import { FuseError } from './errors.js'
import type { FuseBackend } from './backend.js'

/** One file, served from a RangeSource, in a directory of its own: read-only, or read-write from a writable source. */
export type ServedFile = { name: string; source: RangeSource; writable: false } | { name: string; source: WritableRangeSource; writable: true }

export interface FileServerOptions {
  /** Directory to mount on; created when missing. */
  mountpoint: string
  files: ServedFile[]
  logger?: Logger
  /** Shown in /proc/mounts as `<fsname> <mountpoint> fuse.<subtype>`; stale-mount recovery looks for it. */
  fsname?: string
  subtype?: string
  /**
   * Kernel readahead on the served files, in bytes. A loop device in buffered mode and `dd` of
   * the FUSE file read through the page cache, so this decides how much each FUSE READ asks
   * for; the Go azmount left it at 0 and paid one round trip per 4 KiB page.
   */
  maxReadahead?: number
  /** How long one FUSE request may take before the kernel gets ETIMEDOUT instead of hanging (libfuse2). */
  requestTimeoutMs?: number
}

export interface FileServerStats {
  reads: number
  bytesRead: number
  /** Reads answered by the native data plane from cached blocks, without entering JavaScript (libfuse3). */
  nativeReads: number
  writes: number
  bytesWritten: number
  errors: number
}

/**
 * RangeSources served as regular files through FUSE. Two implementations: libfuse3 through
 * encfs's own addon (large requests, cache hits answered in native threads) and libfuse2 through
 * fuse-native (everything answered by JavaScript on the main thread). See docs/data-path.md.
 */
export interface FileServer {
  readonly mountpoint: string
  readonly backend: FuseBackend
  pathOf(name: string): string
  stats(): FileServerStats
  /** Unmounts FUSE. The sources stay open: their owner closes them. */
  unmount(): Promise<void>
}

export function checkServedNames(files: ServedFile[]): void {
  for (const f of files) {
    if (!/^[A-Za-z0-9._-]+$/.test(f.name)) throw new FuseError('FUSE_BAD_NAME', `invalid served file name "${f.name}"`)
  }
}

export function mountFailed(mountpoint: string, err: Error): FuseError {
  return new FuseError(
    'FUSE_MOUNT_FAILED',
    `cannot mount FUSE at ${mountpoint}: ${err.message}. ` +
      'Check that /dev/fuse exists and the process may use it (root, or the container needs --device /dev/fuse and CAP_SYS_ADMIN).',
    { cause: err },
  )
}
