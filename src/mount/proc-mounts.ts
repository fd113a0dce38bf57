import { readFile } from 'node:fs/promises'

export interface MountEntry {
  source: string
  target: string
  fstype: string
  options: string
}

/** /proc/mounts escapes space, tab, newline and backslash as octal. */
function unescapeOctal(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)))
}

// /proc is not one of our FUSE mounts, so reading it through the thread pool is safe.
export async function readMounts(): Promise<MountEntry[]> {
  const text = await readFile('/proc/self/mounts', 'utf8')
  return text
    .split('\n')
    .filter((l) => l.length > 0)
    .map((line) => {
      const [source = '', target = '', fstype = '', options = ''] = line.split(' ')
      return { source: unescapeOctal(source), target: unescapeOctal(target), fstype, options }
    })
}

/**
 * The devices ("major:minor") of the filesystems mounted below `dir` in this process's mount
 * namespace (/proc/self/mountinfo, `text` for tests). Loop devices are global to the kernel and
 * name their backing file by a path that means something only in the namespace that attached
 * them; the device of the filesystem holding that file (losetup's BACK-MAJ:MIN) does not repeat
 * across namespaces, so it tells our loop devices from another pod's with the same runtime path.
 * Only mounts strictly below `dir` (ours are FUSE mounts at `<dir>/N`, dead or alive): `dir`
 * itself may be a volume whose disk backs loop devices that are not ours.
 */
export async function devicesMountedBelow(dir: string, text?: string): Promise<Set<string>> {
  const info = text ?? (await readFile('/proc/self/mountinfo', 'utf8'))
  const prefix = dir.endsWith('/') ? dir : `${dir}/`
  const devices = new Set<string>()
  for (const line of info.split('\n')) {
    const fields = line.split(' ')
    const device = fields[2]
    const target = unescapeOctal(fields[4] ?? '')
    if (device && target.startsWith(prefix)) devices.add(device)
  }
  return devices
}

export async function isMounted(target: string): Promise<boolean> {
  return (await readMounts()).some((m) => m.target === target)
}
