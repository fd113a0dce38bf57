import { readFile, writeFile } from 'node:fs/promises'
import type { Logger } from '../log/logger.js'

/** Kernel readahead on served files: a whole 8 MiB block in flight ahead of a sequential reader of the FUSE file. */
export const DEFAULT_FUSE_READAHEAD = 8 * 1024 * 1024

/** The "major:minor" of the filesystem mounted at `mountpoint`, from /proc/self/mountinfo (no request to the mount itself). */
export async function mountDevice(mountpoint: string): Promise<string | undefined> {
  const info = await readFile('/proc/self/mountinfo', 'utf8')
  const unescapeOctal = (s: string) => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8)))
  for (const line of info.split('\n')) {
    const f = line.split(' ')
    if (f.length > 4 && unescapeOctal(f[4]!) === mountpoint) return f[2]
  }
  return undefined
}

/**
 * Raises the kernel readahead of a FUSE mount (its backing device info): FUSE's INIT can only
 * lower it from the kernel's 128 KiB, and with 128 KiB a reader of the FUSE file (dd, a loop
 * device in buffered mode) has one or two requests in flight. Best effort: needs root and sysfs.
 */
export async function setMountReadahead(mountpoint: string, bytes: number, logger: Logger): Promise<void> {
  const dev = await mountDevice(mountpoint).catch(() => undefined)
  if (!dev) return
  const file = `/sys/class/bdi/${dev}/read_ahead_kb`
  await writeFile(file, `${Math.round(bytes / 1024)}\n`).then(
    () => logger.debug({ file, kib: Math.round(bytes / 1024) }, 'FUSE readahead set'),
    (err: NodeJS.ErrnoException) => logger.debug({ file, reason: err.message }, 'cannot set the FUSE readahead; keeping the kernel default'),
  )
}
