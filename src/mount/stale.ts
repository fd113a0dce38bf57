import { lstat, readlink, unlink, access } from 'node:fs/promises'
import path from 'node:path'
import type { Logger } from '../log/logger.js'
import type { CommandRunner } from './exec.js'
import { readMounts } from './proc-mounts.js'
import { listLoops, detachLoop } from './loop.js'
import { unmountPath } from './ext4.js'
import { cryptsetupClose, mapperName } from './kernel-unlock.js'
import { veritysetupClose, verityMapperName } from './kernel-verity.js'

export interface StaleTarget {
  index: number
  mountPoint: string
  mountDir: string
}

/** The symlink remotefs creates: `mount_point -> .filesystem-N`. */
export const OUR_LINK = /^\.filesystem-\d+$/

function under(dir: string, p: string): boolean {
  return p.startsWith(dir.endsWith('/') ? dir : `${dir}/`)
}

/**
 * A run that was killed (SIGKILL, OOM, node crash) leaves its symlinks, ext4 mounts, loop devices,
 * dm mappings and dead FUSE mounts (ENOTCONN) behind. Clear exactly those, top-down, before
 * mounting again; never touch anything that is not ours.
 */
export async function clearStale(run: CommandRunner, runtimeDir: string, targets: StaleTarget[], logger: Logger): Promise<number> {
  let cleared = 0
  for (const t of targets) {
    const st = await lstat(t.mountPoint).catch(() => undefined)
    if (st?.isSymbolicLink() && OUR_LINK.test(await readlink(t.mountPoint))) {
      await unlink(t.mountPoint)
      logger.warn({ path: t.mountPoint }, 'removed a stale mount point symlink left by an earlier run')
      cleared++
    }
  }
  const mounts = await readMounts()
  for (const t of targets) {
    // Deepest first, in case something was mounted below it.
    const here = mounts.filter((m) => m.target === t.mountDir || under(t.mountDir, m.target)).reverse()
    for (const m of here) {
      logger.warn({ target: m.target, fstype: m.fstype }, 'unmounting a stale filesystem left by an earlier run')
      await unmountPath(run, m.target, logger, 2_000)
      cleared++
    }
    const mapper = mapperName(t.index)
    if (await access(`/dev/mapper/${mapper}`).then(() => true, () => false)) {
      logger.warn({ mapper }, 'closing a stale dm-crypt mapping left by an earlier run')
      await cryptsetupClose(run, mapper).catch((err: unknown) => logger.error({ err, mapper }, 'cannot close stale mapping'))
      cleared++
    }
    // dm-verity lies under dm-crypt: closed after it.
    const verityMapper = verityMapperName(t.index)
    if (await access(`/dev/mapper/${verityMapper}`).then(() => true, () => false)) {
      logger.warn({ mapper: verityMapper }, 'closing a stale dm-verity mapping left by an earlier run')
      await veritysetupClose(run, verityMapper).catch((err: unknown) => logger.error({ err, mapper: verityMapper }, 'cannot close stale mapping'))
      cleared++
    }
  }
  const loops = await listLoops(run).catch((err: unknown) => {
    logger.debug({ err }, 'cannot list loop devices')
    return []
  })
  for (const loop of loops) {
    if (under(runtimeDir, loop.backingFile)) {
      logger.warn({ device: loop.name, file: loop.backingFile }, 'detaching a stale loop device left by an earlier run')
      await detachLoop(run, loop.name).catch((err: unknown) => logger.error({ err, device: loop.name }, 'cannot detach stale loop device'))
      cleared++
    }
  }
  for (const m of (await readMounts()).filter((x) => under(runtimeDir, x.target) && x.fstype.startsWith('fuse')).reverse()) {
    logger.warn({ target: m.target }, 'unmounting a dead FUSE mount left by an earlier run')
    await run('fusermount', ['-u', '-z', m.target]).catch(() => run('umount', ['--lazy', m.target]))
    cleared++
  }
  if (cleared > 0) logger.warn({ cleared, runtimeDir: path.resolve(runtimeDir) }, 'cleared what an earlier run left behind')
  return cleared
}
