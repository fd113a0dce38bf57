import { spawn, execFile, type ChildProcess } from 'node:child_process'
import { promisify } from 'node:util'
import { lstat, mkdtemp, readdir, readFile, readlink, stat } from 'node:fs/promises'
import { readFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { waitFor } from '../../src/retry/retry.js'
import { within } from './time.js'

const exec = promisify(execFile)
const here = path.dirname(fileURLToPath(import.meta.url))
/** The built CLI entry points, next to this file in dist/. */
export const REMOTEFS_JS = path.resolve(here, '../../../bin/remotefs.js')
/** The Node.js flags remotefs runs with, from its first line (`#!/usr/bin/env -S node FLAGS`): as the image runs it. */
export const REMOTEFS_NODE_FLAGS: readonly string[] = (readFileSync(REMOTEFS_JS, 'utf8').split('\n')[0] ?? '').split(/\s+/).slice(3)
export const ENCFS_JS = path.resolve(here, '../../../bin/encfs.js')
/** The repository's root (this file is in dist/test/helpers/). */
export const REPO = path.resolve(here, '../../..')

export interface FsConfig {
  mount_point: string
  azure_url: string
  raw_key?: string
  read_write?: boolean
  azure_url_private?: boolean
  key?: Record<string, unknown>
  [extension: string]: unknown
}

export function sidecarArgs(filesystems: FsConfig[], extra: Record<string, unknown> = {}): string {
  return Buffer.from(JSON.stringify({ azure_filesystems: filesystems, ...extra })).toString('base64')
}

export interface Sidecar {
  child: ChildProcess
  runtimeDir: string
  logFile: string
  output(): string
  /** Resolves with the exit code. */
  exited: Promise<number | null>
  log(): Promise<string>
}

export interface SidecarOptions {
  args?: string[]
  env?: Record<string, string>
  runtimeDir?: string
  /** Node.js flags besides REMOTEFS_NODE_FLAGS (default --enable-source-maps, for readable stacks; the bench runs remotefs as the image does, without). */
  nodeArgs?: string[]
}

export async function startSidecar(b64: string | undefined, o: SidecarOptions = {}): Promise<Sidecar> {
  const runtimeDir = o.runtimeDir ?? (await mkdtemp(path.join(os.tmpdir(), 'encfs-rt-')))
  const logFile = path.join(`${runtimeDir}.log`)
  // A restart in the same runtime directory appends to the same log: only this run's lines count.
  const logStart = await stat(logFile).then(
    (st) => st.size,
    () => 0,
  )
  const args = [REMOTEFS_JS, ...(b64 !== undefined ? ['-base64', b64] : []), '-loglevel', 'debug', '-logfile', logFile, '--runtime-dir', runtimeDir, ...(o.args ?? [])]
  // Tests run in parallel: the API (off by default) is served only when a test asks, on a port of its own.
  const env = { ...process.env, Port: '', EncfsApi: '', ...o.env }
  const child = spawn(process.execPath, [...REMOTEFS_NODE_FLAGS, ...(o.nodeArgs ?? ['--enable-source-maps']), ...args], { stdio: ['ignore', 'pipe', 'pipe'], env })
  let out = ''
  child.stdout?.on('data', (d: Buffer) => {
    out += d.toString()
  })
  child.stderr?.on('data', (d: Buffer) => {
    out += d.toString()
  })
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
  return {
    child,
    runtimeDir,
    logFile,
    output: () => out,
    exited,
    log: () =>
      readFile(logFile).then(
        (b) => b.subarray(logStart).toString('utf8'),
        () => '',
      ),
  }
}

/**
 * Waits until every path exists as a symlink (remotefs's readiness signal to applications) and the
 * sidecar has logged that it is ready (a killed run's stale symlink must not count), or it exits.
 */
export async function waitReady(sidecar: Sidecar, mountPoints: string[], timeoutMs = 90_000): Promise<void> {
  await waitUntil(
    'remotefs to be ready',
    async () => {
      const ready = await Promise.all(
        mountPoints.map((p) =>
          lstat(p).then(
            (s) => s.isSymbolicLink(),
            () => false,
          ),
        ),
      )
      return ready.every(Boolean) && (await sidecar.log()).includes('"msg":"ready:')
    },
    { exited: sidecar.exited, timeoutMs, details: async () => `${sidecar.output()}\n${await sidecar.log()}` },
  )
}

/** Resolves once `sidecar` has logged a line matching `pattern`; its exit first, or the timeout, is an error. */
export async function waitForLog(sidecar: Sidecar, pattern: RegExp, timeoutMs = 60_000): Promise<void> {
  await waitUntil(`remotefs to log ${pattern}`, async () => pattern.test(await sidecar.log()), {
    exited: sidecar.exited,
    timeoutMs,
    intervalMs: 50,
    details: async () => `${sidecar.output()}\n${await sidecar.log()}`,
  })
}

export interface WaitOptions {
  /** The process whose exit ends the wait with an error (it will not get there any more). */
  exited?: Promise<number | null>
  timeoutMs?: number
  intervalMs?: number
  /** What to show when the wait fails (the process's output, its log). */
  details?: () => string | Promise<string>
}

/**
 * Asks `check` until it holds. Waiting for a child process or a file to get somewhere can only
 * poll; a failure says what was awaited and shows `details()` instead of hanging until ava's timeout.
 */
export async function waitUntil(what: string, check: () => Promise<boolean>, o: WaitOptions = {}): Promise<void> {
  let code: number | null | undefined
  void o.exited?.then((c) => {
    code = c
  })
  const fail = async (why: string) => new Error(`${why} while waiting for ${what}${o.details ? `:\n${await o.details()}` : ''}`)
  const ok = await waitFor(
    async () => {
      if (await check()) return true
      if (code !== undefined) throw await fail(`exited with ${code}`)
      return false
    },
    { intervalMs: o.intervalMs ?? 100, timeoutMs: o.timeoutMs ?? 90_000 },
  )
  if (!ok) throw await fail(`timed out after ${o.timeoutMs ?? 90_000} ms`)
}

export async function stopSidecar(sidecar: Sidecar, signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
  if (sidecar.child.exitCode === null && sidecar.child.signalCode === null) sidecar.child.kill(signal)
  const timer = setTimeout(() => sidecar.child.kill('SIGKILL'), 60_000)
  const code = await sidecar.exited
  clearTimeout(timer)
  return code
}

/** Runs the encfs CLI as a user does; resolves with its exit code and output (never rejects on a non-zero exit). */
export async function runEncfs(args: string[], o: { env?: Record<string, string> } = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await exec(process.execPath, [ENCFS_JS, ...args], { timeout: 240_000, ...(o.env ? { env: { ...process.env, ...o.env } } : {}) })
    return { code: 0, stdout, stderr }
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string }
    return { code: e.code ?? -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' }
  }
}

/** Reads a file from a child process, as an application container would (never through this process's thread pool). */
export async function readFromChild(file: string): Promise<Buffer> {
  const { stdout } = await exec('cat', [file], { encoding: 'buffer', maxBuffer: 1 << 30 })
  return stdout
}

export async function listFromChild(dir: string): Promise<string[]> {
  const { stdout } = await exec('find', [dir, '-mindepth', '1', '-printf', '%P\\n'])
  return stdout.split('\n').filter(Boolean).sort()
}

/** What a user checks after shutdown: no mounts, loops or FUSE left that belong to this run. */
export async function leftovers(runtimeDir: string, mountDirs: string[]): Promise<string[]> {
  const found: string[] = []
  const mounts = await readFile('/proc/self/mounts', 'utf8')
  for (const line of mounts.split('\n')) {
    const target = line.split(' ')[1] ?? ''
    if (target.startsWith(runtimeDir) || mountDirs.includes(target)) found.push(`mount: ${line}`)
  }
  const { stdout } = await exec('losetup', ['--list', '--noheadings', '--output', 'NAME,BACK-FILE'])
  for (const line of stdout.split('\n')) if (line.includes(runtimeDir)) found.push(`loop: ${line.trim()}`)
  return found
}

/** A child process that keeps a file open, as an application does, and reads it when asked. */
export interface Holder {
  /** One read through the held descriptor: the bytes, or the error code the kernel gave (never rejects while the child lives). */
  read(offset: number, length: number): Promise<{ ok: true; bytes: Buffer } | { ok: false; code: string }>
  /** Closes the file: the child is ended (SIGKILL if it does not end within a second). */
  release(): Promise<void>
}

// The child: opens the file once, answers "offset length" lines with one JSON line per read.
const HOLDER_JS = `
const fs = require('node:fs')
const fd = fs.openSync(process.argv[1], 'r')
process.stdout.write('held\\n')
require('node:readline').createInterface({ input: process.stdin }).on('line', (line) => {
  const [offset, length] = line.split(' ').map(Number)
  let answer
  try {
    const b = Buffer.alloc(length)
    answer = { ok: true, data: b.subarray(0, fs.readSync(fd, b, 0, length, offset)).toString('base64') }
  } catch (err) {
    answer = { ok: false, code: err.code ?? String(err) }
  }
  process.stdout.write(JSON.stringify(answer) + '\\n')
})
`

/** Opens `file` in a child process and keeps it open until release() (never reads our own mounts from this process). */
export async function holdOpen(file: string): Promise<Holder> {
  const child = spawn(process.execPath, ['-e', HOLDER_JS, file], { stdio: ['pipe', 'pipe', 'pipe'] })
  const lines: string[] = []
  const waiting: ((line: string) => void)[] = []
  let buffered = ''
  let stderr = ''
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString()
  })
  child.stdout.on('data', (d: Buffer) => {
    buffered += d.toString()
    for (let nl = buffered.indexOf('\n'); nl >= 0; nl = buffered.indexOf('\n')) {
      const line = buffered.slice(0, nl)
      buffered = buffered.slice(nl + 1)
      const w = waiting.shift()
      if (w) w(line)
      else lines.push(line)
    }
  })
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()))
  const next = (): Promise<string> =>
    lines.length > 0
      ? Promise.resolve(lines.shift()!)
      : new Promise((resolve, reject) => {
          waiting.push(resolve)
          void exited.then(() => reject(new Error(`the holder of ${file} exited: ${stderr}`)))
        })
  const first = await next()
  if (first !== 'held') throw new Error(`the holder could not open ${file}: ${first} ${stderr}`)
  return {
    async read(offset, length) {
      child.stdin.write(`${offset} ${length}\n`)
      const a = JSON.parse(await next()) as { ok: boolean; data?: string; code?: string }
      return a.ok ? { ok: true, bytes: Buffer.from(a.data ?? '', 'base64') } : { ok: false, code: a.code ?? 'unknown' }
    },
    async release() {
      if (child.exitCode !== null || child.signalCode !== null) return
      child.kill('SIGTERM')
      const timer = setTimeout(() => child.kill('SIGKILL'), 1000)
      // A read stuck in the kernel below a block device cannot be killed: do not wait for it forever
      // (the test has failed already then; this must not hide why).
      await within(10_000, `the holder of ${file} to exit`, exited)
        .catch(() => {})
        .finally(() => clearTimeout(timer))
    },
  }
}

/** The listening TCP sockets of this network namespace, from /proc/net/tcp{,6} (no iproute2 needed): the local address in hex, the port, the socket's inode. */
export async function listeningSockets(): Promise<{ address: string; port: number; inode: string }[]> {
  const out: { address: string; port: number; inode: string }[] = []
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    for (const line of (await readFile(table, 'utf8').catch(() => '')).split('\n').slice(1)) {
      const f = line.trim().split(/\s+/)
      // local_address is HEXIP:HEXPORT, st 0A is LISTEN, the inode is the tenth column.
      const [address, hexPort] = (f[1] ?? '').split(':')
      if (f[3] === '0A' && address && hexPort) out.push({ address, port: Number.parseInt(hexPort, 16), inode: f[9] ?? '' })
    }
  }
  return out
}

/** The TCP ports process `pid` listens on, as `ss -ltnp` would show them. */
export async function listeningPorts(pid: number): Promise<number[]> {
  const inodes = new Set<string>()
  for (const fd of await readdir(`/proc/${pid}/fd`)) {
    const target = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => '')
    const m = /^socket:\[(\d+)\]$/.exec(target)
    if (m) inodes.add(m[1]!)
  }
  const ports = (await listeningSockets()).filter((s) => inodes.has(s.inode)).map((s) => s.port)
  return [...new Set(ports)].sort((a, b) => a - b)
}
