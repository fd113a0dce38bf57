// Starting remotefs (and rclone, the peer) for one measurement, and reading what they report.
import { spawn } from 'node:child_process'
import { lstat, mkdir, rm, readdir } from 'node:fs/promises'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { startSidecar, stopSidecar, sidecarArgs, type Sidecar } from '../test/helpers/remotefs.js'

const exec = promisify(execFile)

export interface CacheCounters {
  bytesFetched: number
  fetches: number
  prefetches: number
  hits: number
  misses: number
}

export interface RemotefsRun {
  sidecar: Sidecar
  pid: number
  /** The mount point symlink: the files of the image are under it. */
  mountPoint: string
  /** The FUSE file remotefs serves (plaintext in userspace unlock). */
  dataFile: string
  /** From spawn to the mount point appearing. */
  startMs: number
  /** What the keyslot's KDF took, as remotefs logged it. */
  kdfMs: number
  /** Cache counters when the filesystem became ready (what mounting fetched). */
  atReady?: CacheCounters
  /** Stops remotefs; resolves with its counters at unmount. */
  stop(): Promise<{ atEnd?: CacheCounters; backend?: string; fuse?: FuseCounters }>
}

export interface MountOptions {
  url: string
  key: Buffer
  /** Directory to put the mount point in (must exist). */
  parent: string
  name: string
  readWrite?: boolean
  /** FUSE backend (passed as --fuse when given). */
  backend?: string
  /** HTTP client of blob reads (passed as --http when given). */
  http?: string
  cache?: Record<string, number>
}

/** What the FUSE server counted (reads it answered, bytes, how many without JavaScript). */
export interface FuseCounters {
  reads: number
  bytesRead: number
  nativeReads?: number
}

interface LogLine {
  msg?: string
  ms?: number
  cache?: CacheCounters
  fuse?: FuseCounters
  backend?: string
  [k: string]: unknown
}

function logLines(text: string): LogLine[] {
  const out: LogLine[] = []
  for (const l of text.split('\n')) {
    if (!l.startsWith('{')) continue
    try {
      out.push(JSON.parse(l) as LogLine)
    } catch {
      // a partial last line
    }
  }
  return out
}

/** Starts remotefs on one image and waits (polling every 10 ms) until its mount point appears. */
export async function startRemotefs(o: MountOptions): Promise<RemotefsRun> {
  const mountPoint = path.join(o.parent, o.name)
  const args = ['--allow-raw-key', ...(o.backend ? ['--fuse', o.backend] : []), ...(o.http ? ['--http', o.http] : [])]
  const started = performance.now()
  const sidecar = await startSidecar(
    sidecarArgs([{ mount_point: mountPoint, azure_url: o.url, raw_key: o.key.toString('hex'), read_write: o.readWrite ?? false, ...(o.cache ? { cache: o.cache } : {}) }]),
    { args, nodeArgs: [] },
  )
  let exitCode: number | null | undefined
  void sidecar.exited.then((c) => {
    exitCode = c
  })
  const deadline = Date.now() + 120_000
  for (;;) {
    if (
      await lstat(mountPoint).then(
        (s) => s.isSymbolicLink(),
        () => false,
      )
    )
      break
    if (exitCode !== undefined) throw new Error(`remotefs exited with ${exitCode} before mounting:\n${sidecar.output()}\n${await sidecar.log()}`)
    if (Date.now() > deadline) {
      await stopSidecar(sidecar)
      throw new Error(`remotefs did not mount within 120 s:\n${await sidecar.log()}`)
    }
    await sleep(10)
  }
  const startMs = performance.now() - started
  // The ready line follows the symlink closely.
  let lines = logLines(await sidecar.log())
  for (let i = 0; i < 200 && !lines.some((l) => l.msg === 'filesystem ready'); i++) {
    await sleep(10)
    lines = logLines(await sidecar.log())
  }
  const kdf = lines.find((l) => /^keyslot \d+ opened$/.test(l.msg ?? ''))
  const ready = lines.find((l) => l.msg === 'filesystem ready')
  return {
    sidecar,
    pid: sidecar.child.pid!,
    mountPoint,
    dataFile: path.join(sidecar.runtimeDir, '0', 'data'),
    startMs,
    kdfMs: kdf?.ms ?? 0,
    ...(ready?.cache ? { atReady: ready.cache } : {}),
    async stop() {
      const code = await stopSidecar(sidecar)
      const log = await sidecar.log()
      await rm(sidecar.logFile, { force: true })
      if (code !== 0) throw new Error(`remotefs exited with ${code}:\n${log.slice(-4000)}`)
      const end = logLines(log).find((l) => l.msg === 'I/O statistics')
      const chose = logLines(log).find((l) => typeof l.backend === 'string')
      return { ...(end?.cache ? { atEnd: end.cache } : {}), ...(end?.fuse ? { fuse: end.fuse } : {}), ...(chose?.backend ? { backend: chose.backend } : {}) }
    },
  }
}

export interface RcloneMount {
  /** The blob as a file inside the mount. */
  file: string
  stop(): Promise<void>
}

/** rclone mount of the container holding the blob (ciphertext, no decryption), as the peer to beat. */
export async function startRclone(o: { blobEndpoint: string; container: string; blob: string; dir: string }): Promise<RcloneMount> {
  const mnt = path.join(o.dir, `rclone-${Date.now()}`)
  await mkdir(mnt, { recursive: true })
  const child = spawn(
    'rclone',
    [
      'mount',
      `:azureblob:${o.container}`,
      mnt,
      '--azureblob-use-emulator',
      '--azureblob-endpoint',
      o.blobEndpoint,
      '--read-only',
      '--vfs-cache-mode',
      'off',
      '--config',
      '/dev/null',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  )
  let err = ''
  child.stderr.on('data', (d: Buffer) => {
    err += d.toString()
  })
  let exited = false
  const exit = new Promise<void>((resolve) =>
    child.on('exit', () => {
      exited = true
      resolve()
    }),
  )
  const file = path.join(mnt, o.blob)
  const deadline = Date.now() + 30_000
  while (
    !(await readdir(mnt).then(
      (e) => e.includes(o.blob),
      () => false,
    ))
  ) {
    if (exited || Date.now() > deadline) {
      child.kill('SIGKILL')
      throw new Error(`rclone mount did not show ${o.blob}: ${err.trim()}`)
    }
    await sleep(20)
  }
  return {
    file,
    async stop() {
      await exec('fusermount', ['-u', mnt]).catch(() => child.kill('SIGTERM'))
      const t = setTimeout(() => child.kill('SIGKILL'), 10_000)
      await exit
      clearTimeout(t)
      await rm(mnt, { recursive: true, force: true })
    },
  }
}
