import { mkdir, readFile, rm, writeFile, rmdir, readdir } from 'node:fs/promises'
import path from 'node:path'
import os from 'node:os'
import { MountError } from './errors.js'

/**
 * Fixed (not random) so that a restart after a crash finds what the previous run left behind:
 * the FUSE mounts live at <runtime dir>/<N>. One remotefs per runtime dir, enforced by a pid file.
 */
export function defaultRuntimeDir(): string {
  return path.join(os.tmpdir(), 'encfs-remotefs')
}

export function fuseDirOf(runtimeDir: string, index: number): string {
  return path.join(runtimeDir, String(index))
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

export async function claimRuntimeDir(runtimeDir: string): Promise<{ release(): Promise<void> }> {
  await mkdir(runtimeDir, { recursive: true, mode: 0o700 })
  const pidFile = path.join(runtimeDir, 'remotefs.pid')
  const previous = Number.parseInt(await readFile(pidFile, 'utf8').catch(() => ''), 10)
  if (Number.isSafeInteger(previous) && previous > 0 && previous !== process.pid && alive(previous)) {
    throw new MountError('RUNTIME_DIR_BUSY', `another remotefs (pid ${previous}) is using ${runtimeDir}; stop it first, or give this one its own --runtime-dir`)
  }
  await writeFile(pidFile, `${process.pid}\n`, { mode: 0o600 })
  return {
    async release() {
      await rm(pidFile, { force: true })
      // Only the empty FUSE mount directories remain; leave anything else for a human to see.
      for (const entry of await readdir(runtimeDir).catch(() => [] as string[])) {
        if (/^\d+$/.test(entry)) await rmdir(path.join(runtimeDir, entry)).catch(() => {})
      }
      await rmdir(runtimeDir).catch(() => {})
    },
  }
}
