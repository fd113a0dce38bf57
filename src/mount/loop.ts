import type { CommandRunner } from '../process/run.js'
import { MountError } from './errors.js'
import { hasCode } from '../errors/encfs-error.js'

/**
 * `directIo`: the loop device reads and writes its backing file with O_DIRECT, so requests stay
 * concurrent (a buffered loop device handles them one at a time) and the FUSE file's pages are
 * not cached a second time under ext4's (see docs/data-path.md).
 */
export async function attachLoop(run: CommandRunner, file: string, readOnly: boolean, o: { directIo?: boolean } = {}): Promise<string> {
  const args = ['--find', '--show', ...(readOnly ? ['--read-only'] : []), ...(o.directIo ? ['--direct-io=on'] : []), file]
  try {
    const { stdout } = await run('losetup', args, { timeoutMs: 60_000 })
    const device = stdout.trim()
    if (!device.startsWith('/dev/')) throw new MountError('LOOP_ATTACH_FAILED', `losetup printed no device for ${file}`)
    return device
  } catch (err) {
    if (hasCode(err, 'COMMAND_MISSING')) throw err
    throw new MountError('LOOP_ATTACH_FAILED', `cannot attach a loop device to ${file}: ${(err as Error).message}. Where loop devices are not allowed, use --mounter fuse2fs.`, {
      cause: err,
    })
  }
}

export async function detachLoop(run: CommandRunner, device: string): Promise<void> {
  await run('losetup', ['--detach', device], { timeoutMs: 60_000 })
}

export interface LoopDevice {
  name: string
  backingFile: string
  /** "major:minor" of the filesystem holding the backing file (global, unlike the path, which is per mount namespace). */
  backingDevice: string
}

/** Loop devices and their backing files, for finding those a crashed run left attached. */
export async function listLoops(run: CommandRunner): Promise<LoopDevice[]> {
  const { stdout } = await run('losetup', ['--list', '--json', '--output', 'NAME,BACK-FILE,BACK-MAJ:MIN'], { timeoutMs: 30_000 })
  if (!stdout.trim()) return []
  const parsed = JSON.parse(stdout) as { loopdevices?: { name: string; 'back-file': string | null; 'back-maj:min'?: string | null }[] }
  return (parsed.loopdevices ?? []).map((d) => ({
    name: d.name,
    // A backing file on a dead FUSE mount is shown with " (deleted)" appended by some versions.
    backingFile: (d['back-file'] ?? '').replace(/ \(deleted\)$/, ''),
    backingDevice: (d['back-maj:min'] ?? '').trim(),
  }))
}
