import { spawn, type ChildProcess } from 'node:child_process'
import type { Logger } from '../log/logger.js'
import type { CommandRunner } from '../process/run.js'
import { constantBackoff, retry, RETRY, STOP, waitFor } from '../retry/retry.js'
import { MountError } from './errors.js'
import { isMounted } from './proc-mounts.js'

/** Kernel ext4 on a block device (loop or dm-crypt). Read-only images also skip journal replay. */
export async function mountExt4(run: CommandRunner, device: string, target: string, readOnly: boolean): Promise<void> {
  const options = readOnly ? 'ro,noload' : 'rw'
  try {
    await run('mount', ['-t', 'ext4', '-o', options, device, target], { timeoutMs: 120_000 })
  } catch (err) {
    throw new MountError(
      'EXT4_MOUNT_FAILED',
      `cannot mount the decrypted image as ext4 at ${target}: ${(err as Error).message}. ` +
        'The key opened the LUKS keyslot, so the image holds no valid ext4 filesystem (was it made with mkfs.ext4 inside the LUKS container?).',
      { cause: err },
    )
  }
}

/**
 * How long, from the start of a stop, unmounts wait for applications to close their files before
 * detaching lazily. One window for all filesystems: the pod's containers get SIGTERM together, and
 * the sidecar must be gone well inside Kubernetes' 30 s grace period (docs/data-path.md, "Shutdown").
 */
export const UNMOUNT_BUSY_WINDOW_MS = 5_000

/**
 * Unmounts `target`; while it is busy (an application still has files open) it retries, and
 * after `busyTimeoutMs` it detaches lazily so that shutdown can proceed.
 */
export async function unmountPath(run: CommandRunner, target: string, logger: Logger, busyTimeoutMs = UNMOUNT_BUSY_WINDOW_MS): Promise<void> {
  try {
    await retry(
      async () => {
        if (await isMounted(target)) await run('umount', [target], { timeoutMs: 120_000 })
      },
      { budgetMs: busyTimeoutMs, backoff: constantBackoff(250), classify: (err) => (isBusy(err) ? RETRY : STOP) },
    )
  } catch (err) {
    logger.warn({ target, err }, isBusy(err) ? 'still busy; detaching lazily' : 'umount failed; detaching lazily')
    await run('umount', ['--lazy', target], { timeoutMs: 60_000 })
  }
}

const isBusy = (err: unknown): boolean => /busy/i.test((err as Error).message)

export interface Fuse2fsMount {
  child: ChildProcess
  target: string
}

/**
 * ext4 through fuse2fs, for platforms that allow neither loop devices nor device-mapper: it
 * needs only /dev/fuse. It runs in the foreground as our child so shutdown can wait for it.
 */
export async function mountFuse2fs(file: string, target: string, readOnly: boolean, logger: Logger, readyTimeoutMs = 30_000): Promise<Fuse2fsMount> {
  const options = ['allow_other', 'default_permissions', ...(readOnly ? ['ro', 'norecovery'] : ['rw'])]
  const child = spawn('fuse2fs', [file, target, '-f', '-o', options.join(',')], { stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  child.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString()
  })
  let exited: string | undefined
  child.on('exit', (code, signal) => {
    exited = signal ?? `code ${code}`
  })
  child.on('error', (e: NodeJS.ErrnoException) => {
    exited = e.code === 'ENOENT' ? 'not installed' : e.message
  })
  const mounted = await waitFor(
    async () => {
      if (exited !== undefined) {
        throw new MountError(
          'FUSE2FS_FAILED',
          exited === 'not installed'
            ? 'fuse2fs is not installed: apt-get install fuse2fs'
            : `fuse2fs could not mount the decrypted image at ${target} (${exited}): ${stderr.trim().split('\n').slice(-2).join(' | ')}`,
        )
      }
      return isMounted(target)
    },
    { intervalMs: 50, timeoutMs: readyTimeoutMs },
  )
  if (!mounted) {
    child.kill('SIGKILL')
    throw new MountError('FUSE2FS_FAILED', `fuse2fs did not mount ${target} within ${readyTimeoutMs} ms`)
  }
  logger.debug({ target, pid: child.pid }, 'fuse2fs mounted')
  return { child, target }
}

export async function unmountFuse2fs(run: CommandRunner, mount: Fuse2fsMount, logger: Logger, busyTimeoutMs = UNMOUNT_BUSY_WINDOW_MS): Promise<void> {
  const exited = new Promise<void>((resolve) => {
    if (mount.child.exitCode !== null || mount.child.signalCode !== null) resolve()
    else mount.child.once('exit', () => resolve())
  })
  await unmountPath(run, mount.target, logger, busyTimeoutMs)
  const timer = setTimeout(() => mount.child.kill('SIGKILL'), 10_000)
  await exited
  clearTimeout(timer)
}
