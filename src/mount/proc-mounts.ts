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

export async function isMounted(target: string): Promise<boolean> {
  return (await readMounts()).some((m) => m.target === target)
}
