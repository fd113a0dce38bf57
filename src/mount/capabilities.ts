import { access, constants, readFile } from 'node:fs/promises'
import type { Logger } from '../log/logger.js'
import { MountError } from './errors.js'

export type UnlockMode = 'auto' | 'kernel' | 'userspace'
export type MounterMode = 'auto' | 'loop' | 'fuse2fs'

export interface Capabilities {
  deviceMapper: boolean
  cryptsetup: boolean
  loop: boolean
  fuse2fs: boolean
  fuse: boolean
}

const BIN_DIRS = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin']

async function exists(path: string, mode = constants.F_OK): Promise<boolean> {
  try {
    await access(path, mode)
    return true
  } catch {
    return false
  }
}

export async function hasProgram(name: string): Promise<boolean> {
  const dirs = [...(process.env.PATH ?? '').split(':').filter(Boolean), ...BIN_DIRS]
  for (const dir of dirs) if (await exists(`${dir}/${name}`, constants.X_OK)) return true
  return false
}

/**
 * The device node alone proves nothing: installing cryptsetup creates /dev/mapper/control even
 * where the kernel has no device-mapper, so the kernel's own list of misc devices decides.
 */
export async function deviceMapperAvailable(o: { control?: string; misc?: string } = {}): Promise<boolean> {
  if (!(await exists(o.control ?? '/dev/mapper/control'))) return false
  const misc = await readFile(o.misc ?? '/proc/misc', 'utf8').catch(() => '')
  return /^\s*\d+\s+device-mapper$/m.test(misc)
}

export async function probeCapabilities(): Promise<Capabilities> {
  const [deviceMapper, cryptsetup, loop, fuse2fs, fuse] = await Promise.all([
    deviceMapperAvailable(),
    hasProgram('cryptsetup'),
    exists('/dev/loop-control'),
    hasProgram('fuse2fs'),
    exists('/dev/fuse'),
  ])
  return { deviceMapper, cryptsetup, loop, fuse2fs, fuse }
}

export interface Choice<T> {
  mode: T
  reason: string
}

export function chooseUnlock(requested: UnlockMode, caps: Capabilities): Choice<'kernel' | 'userspace'> {
  const kernelReady = caps.deviceMapper && caps.cryptsetup
  const missing = !caps.deviceMapper
    ? 'device-mapper is not available (no /dev/mapper/control, or the kernel lists no device-mapper in /proc/misc: the kernel has no dm-crypt, or the container is not privileged)'
    : 'cryptsetup is not installed (apt-get install cryptsetup-bin)'
  if (requested === 'kernel') {
    if (!kernelReady) {
      throw new MountError(
        'UNLOCK_KERNEL_UNAVAILABLE',
        `--unlock kernel needs dm-crypt, but ${missing}. Use --unlock userspace (or auto), which decrypts in encfs and needs only FUSE.`,
      )
    }
    return { mode: 'kernel', reason: 'requested' }
  }
  if (requested === 'userspace') return { mode: 'userspace', reason: 'requested' }
  return kernelReady ? { mode: 'kernel', reason: 'device-mapper and cryptsetup are available' } : { mode: 'userspace', reason: missing }
}

export function chooseMounter(requested: MounterMode, caps: Capabilities): Choice<'loop' | 'fuse2fs'> {
  if (requested === 'loop') {
    if (!caps.loop) throw new MountError('MOUNTER_LOOP_UNAVAILABLE', '--mounter loop needs loop devices, but /dev/loop-control is missing. Use --mounter fuse2fs (or auto).')
    return { mode: 'loop', reason: 'requested' }
  }
  if (requested === 'fuse2fs') {
    if (!caps.fuse2fs) throw new MountError('MOUNTER_FUSE2FS_UNAVAILABLE', '--mounter fuse2fs needs fuse2fs: apt-get install fuse2fs')
    return { mode: 'fuse2fs', reason: 'requested' }
  }
  if (caps.loop) return { mode: 'loop', reason: 'loop devices are available' }
  if (caps.fuse2fs) return { mode: 'fuse2fs', reason: 'no loop devices (/dev/loop-control is missing)' }
  throw new MountError('MOUNTER_UNAVAILABLE', 'cannot mount ext4: there are no loop devices (/dev/loop-control is missing) and fuse2fs is not installed (apt-get install fuse2fs)')
}

export function logChoices(logger: Logger, index: number, unlock: Choice<string>, mounter: Choice<string>): void {
  logger.info(
    { filesystem: index, unlock: unlock.mode, unlockReason: unlock.reason, mounter: mounter.mode, mounterReason: mounter.reason },
    `filesystem ${index}: unlock ${unlock.mode} (${unlock.reason}); mount via ${mounter.mode} (${mounter.reason})`,
  )
}
