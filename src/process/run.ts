import { spawn } from 'node:child_process'
import { ProcessError } from './errors.js'

export interface CommandResult {
  stdout: string
  stderr: string
}

export interface CommandOptions {
  /** Bytes for the child's stdin (the LUKS key goes this way, never through a file). */
  input?: Buffer
  timeoutMs?: number
  /** Exit codes that are not failures. */
  okCodes?: number[]
  cwd?: string
}

/** How encfs runs programs; the mount code takes one as a parameter so tests can substitute a recorder that checks the exact commands. */
export type CommandRunner = (command: string, args: string[], options?: CommandOptions) => Promise<CommandResult & { code: number }>

/** Debian package that provides each program we run, for "install X" messages. */
const PACKAGE_OF: Record<string, string> = {
  cryptsetup: 'cryptsetup-bin',
  veritysetup: 'cryptsetup-bin',
  losetup: 'util-linux',
  mount: 'mount',
  umount: 'mount',
  fuse2fs: 'fuse2fs',
  fusermount: 'fuse',
  'mkfs.ext4': 'e2fsprogs',
  e2fsck: 'e2fsprogs',
}

export function packageFor(command: string): string {
  return PACKAGE_OF[command] ?? command
}

const SBIN_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'

/**
 * Runs a program asynchronously: mount, losetup and cryptsetup all touch our own FUSE mounts,
 * and a synchronous call would block the thread that has to answer their requests.
 */
export const runCommand: CommandRunner = (command, args, options = {}) =>
  new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: options.cwd,
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...process.env, PATH: `${process.env.PATH ?? ''}:${SBIN_PATH}`, LC_ALL: 'C' },
    })
    const out: Buffer[] = []
    const err: Buffer[] = []
    let timer: NodeJS.Timeout | undefined
    if (options.timeoutMs) {
      timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs)
    }
    child.stdout.on('data', (d: Buffer) => out.push(d))
    child.stderr.on('data', (d: Buffer) => err.push(d))
    child.on('error', (e: NodeJS.ErrnoException) => {
      if (timer) clearTimeout(timer)
      if (e.code === 'ENOENT') {
        reject(
          new ProcessError('COMMAND_MISSING', `${command} is not installed: install the Debian package ${packageFor(command)} (apt-get install ${packageFor(command)})`, {
            cause: e,
          }),
        )
      } else {
        reject(new ProcessError('COMMAND_FAILED', `cannot run ${command}: ${e.message}`, { cause: e }))
      }
    })
    child.on('close', (code, signal) => {
      if (timer) clearTimeout(timer)
      const result = { stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString(), code: code ?? -1 }
      if (code === 0 || (code !== null && options.okCodes?.includes(code))) return resolve(result)
      const why = signal ? `was killed by ${signal}${options.timeoutMs ? ` (timeout ${options.timeoutMs} ms)` : ''}` : `exited with code ${code}`
      const detail = [...new Set((result.stderr.trim() || result.stdout.trim()).split('\n'))].slice(-3).join(' | ')
      reject(Object.assign(new ProcessError('COMMAND_FAILED', `${command} ${args.join(' ')} ${why}${detail ? `: ${detail}` : ''}`), { result }))
    })
    // stdin errors (EPIPE when the child exits early) surface through the exit code instead.
    child.stdin.on('error', () => {})
    child.stdin.end(options.input ?? undefined)
  })
