import { lstat, readlink, unlink, access, rmdir } from 'node:fs/promises'
import path from 'node:path'
import type { Logger } from '../log/logger.js'
import type { CommandRunner } from '../process/run.js'
import { readMounts, isMounted, devicesMountedBelow, type MountEntry } from './proc-mounts.js'
import { listLoops, detachLoop, type LoopDevice } from './loop.js'
import { MountError } from './errors.js'
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
 * Whether a mount at `.filesystem-N` is one remotefs makes: ext4 (or fuse2fs) over one of our
 * loop devices, over a FUSE file in our runtime directory itself, or over our dm-crypt mapping
 * for filesystem N. Anything else belongs to someone else.
 */
function isOurs(m: MountEntry, t: StaleTarget, runtimeDir: string, ours: LoopDevice[]): boolean {
  if (under(runtimeDir, m.source)) return true
  if (m.source === `/dev/mapper/${mapperName(t.index)}`) return true
  return ours.some((l) => l.name === m.source)
}

/**
 * Our loop devices: backed by a file on a filesystem mounted in our runtime directory, in this
 * mount namespace (a FUSE mount, dead or alive), told by the backing file's device, never by its
 * path. The default runtime directory is the same in every pod and loop devices are global: by
 * path, a start detached (or set to auto-detach) another pod's loop devices.
 */
async function ourLoops(run: CommandRunner, runtimeDir: string, logger: Logger): Promise<LoopDevice[]> {
  const loops = await listLoops(run).catch((err: unknown) => {
    logger.debug({ err }, 'cannot list loop devices')
    return [] as LoopDevice[]
  })
  const devices = await devicesMountedBelow(path.resolve(runtimeDir))
  return loops.filter((l) => l.backingDevice !== '' && devices.has(l.backingDevice))
}

/**
 * A run that was killed (SIGKILL, OOM, node crash) leaves its symlinks, ext4 mounts, loop devices,
 * dm mappings, dead FUSE mounts (ENOTCONN) and empty mount directories behind. Clear exactly
 * those, top-down, before mounting again; never touch anything that is not ours: a filesystem
 * someone else mounted at `.filesystem-N` stops start-up with MOUNT_DIR_FOREIGN.
 */
export async function clearStale(run: CommandRunner, runtimeDir: string, targets: StaleTarget[], logger: Logger): Promise<number> {
  let cleared = 0
  const loops = await ourLoops(run, runtimeDir, logger)
  const mounts = await readMounts()
  // Refuse before changing anything at all.
  for (const t of targets) {
    const foreign = mounts.find((m) => (m.target === t.mountDir || under(t.mountDir, m.target)) && !isOurs(m, t, runtimeDir, loops))
    if (foreign) {
      throw new MountError(
        'MOUNT_DIR_FOREIGN',
        `${foreign.target} has a filesystem remotefs did not mount (${foreign.fstype} from ${foreign.source}); remotefs mounts filesystem ${t.index} at ${t.mountDir}: unmount it, or choose another mount_point`,
      )
    }
  }
  for (const t of targets) {
    const st = await lstat(t.mountPoint).catch(() => undefined)
    if (st?.isSymbolicLink() && OUR_LINK.test(await readlink(t.mountPoint))) {
      await unlink(t.mountPoint)
      logger.warn({ path: t.mountPoint }, 'removed a stale mount point symlink left by an earlier run')
      cleared++
    }
  }
  for (const t of targets) {
    // Deepest first, in case something was mounted below it.
    const here = mounts.filter((m) => m.target === t.mountDir || under(t.mountDir, m.target)).reverse()
    for (const m of here) {
      logger.warn({ target: m.target, fstype: m.fstype, source: m.source }, 'unmounting a stale filesystem left by an earlier run')
      await unmountPath(run, m.target, logger, 2_000)
      cleared++
    }
    const mapper = mapperName(t.index)
    if (
      await access(`/dev/mapper/${mapper}`).then(
        () => true,
        () => false,
      )
    ) {
      logger.warn({ mapper }, 'closing a stale dm-crypt mapping left by an earlier run')
      await cryptsetupClose(run, mapper).catch((err: unknown) => logger.error({ err, mapper }, 'cannot close stale mapping'))
      cleared++
    }
    // dm-verity lies under dm-crypt: closed after it.
    const verityMapper = verityMapperName(t.index)
    if (
      await access(`/dev/mapper/${verityMapper}`).then(
        () => true,
        () => false,
      )
    ) {
      logger.warn({ mapper: verityMapper }, 'closing a stale dm-verity mapping left by an earlier run')
      await veritysetupClose(run, verityMapper).catch((err: unknown) => logger.error({ err, mapper: verityMapper }, 'cannot close stale mapping'))
      cleared++
    }
  }
  for (const loop of loops) {
    logger.warn({ device: loop.name, file: loop.backingFile, backingDevice: loop.backingDevice }, 'detaching a stale loop device left by an earlier run')
    await detachLoop(run, loop.name).catch((err: unknown) => logger.error({ err, device: loop.name }, 'cannot detach stale loop device'))
    cleared++
  }
  for (const m of (await readMounts()).filter((x) => under(runtimeDir, x.target) && x.fstype.startsWith('fuse')).reverse()) {
    logger.warn({ target: m.target }, 'unmounting a dead FUSE mount left by an earlier run')
    await run('fusermount', ['-u', '-z', m.target]).catch(() => run('umount', ['--lazy', m.target]))
    cleared++
  }
  // The mount directory itself: a start finding it would not know it may remove it at stop.
  for (const t of targets) {
    if (!OUR_LINK.test(path.basename(t.mountDir)) || (await isMounted(t.mountDir))) continue
    if (
      await rmdir(t.mountDir).then(
        () => true,
        () => false,
      )
    ) {
      logger.warn({ path: t.mountDir }, 'removed an empty mount directory left by an earlier run')
      cleared++
    }
  }
  if (cleared > 0) logger.warn({ cleared, runtimeDir: path.resolve(runtimeDir) }, 'cleared what an earlier run left behind')
  return cleared
}
