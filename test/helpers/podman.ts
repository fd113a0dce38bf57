// The container image as users deploy it, on this machine: podman (Debian's, with runc) in a
// private storage root under the image cache, so nothing global is touched; the base made by
// docker/base/trixie-slim.sh (debootstrap, cached), the image by docker/encfs/build.sh.
import { execFile, spawn } from 'node:child_process'
import { access, mkdir } from 'node:fs/promises'
import path from 'node:path'
import { REPO, waitUntil } from './remotefs.js'

/** Where the base's root file system and podman's storage are kept between runs (CI clones anew; this survives). */
export const IMAGE_CACHE = process.env.ENCFS_IMAGE_CACHE || '/var/cache/encfs-image'
const RUN_ROOT = '/run/encfs-image'
/** The tag the image test builds; kept between runs with the base, so the next build reuses its layers. */
export const IMAGE = 'localhost/encfs:test'
/** The Dockerfile's build stage, kept as the layer cache of the next build. */
const BUILD_STAGE = 'localhost/encfs-build-stage:test'
const CONTAINERS_CONF = path.join(REPO, 'docker', 'podman', 'containers.conf')
const STORAGE = ['--root', path.join(IMAGE_CACHE, 'containers'), '--runroot', path.join(RUN_ROOT, 'run'), '--tmpdir', path.join(RUN_ROOT, 'tmp')]
const ENV = { ...process.env, CONTAINERS_CONF, PATH: `${process.env.PATH}:/usr/sbin:/sbin` }
/** podman with the test's storage and configuration, as a command line (for the scripts' ENCFS_ENGINE). */
export const PODMAN = ['podman', ...STORAGE]

export interface Result {
  code: number
  stdout: string
  stderr: string
}

/** Runs a program; resolves with its exit code and output, never rejects on a non-zero exit. */
export function runProgram(cmd: string, args: string[], o: { env?: NodeJS.ProcessEnv; timeoutMs?: number; input?: Buffer } = {}): Promise<Result> {
  return new Promise((resolve) => {
    const child = execFile(cmd, args, { env: o.env ?? ENV, timeout: o.timeoutMs ?? 120_000, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : -1) : 0
      resolve({ code, stdout, stderr: err && code === -1 ? `${stderr}${err.message}` : stderr })
    })
    child.stdin?.end(o.input)
  })
}

export const podman = (args: string[], timeoutMs?: number, input?: Buffer): Promise<Result> => runProgram('podman', [...STORAGE, ...args], { timeoutMs, input })

/** podman's output, or an error with its command line and stderr. */
export async function podmanOk(args: string[], timeoutMs?: number): Promise<string> {
  const r = await podman(args, timeoutMs)
  if (r.code !== 0) throw new Error(`podman ${args.join(' ')} exited with ${r.code}: ${r.stderr.trim()}`)
  return r.stdout
}

/** Streams a long command's output to `log` line by line, so a build shows its progress. */
function runStreaming(cmd: string, args: string[], env: NodeJS.ProcessEnv, log: (line: string) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] })
    let tail: string[] = []
    const take = (d: Buffer) => {
      for (const line of d.toString().split('\n').filter(Boolean)) {
        tail = [...tail.slice(-40), line]
        if (/^(\[\d\/\d\] )?STEP|^trixie-slim:|^built |^setup:/.test(line)) log(line)
      }
    }
    child.stdout.on('data', take)
    child.stderr.on('data', take)
    child.on('error', reject)
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${cmd} ${args.join(' ')} exited with ${code}:\n${tail.join('\n')}`))))
  })
}

const onPath = (cmd: string) => runProgram('sh', ['-c', `command -v ${cmd}`]).then((r) => r.code === 0)

/**
 * Installs Debian's podman, runc and debootstrap when missing (as scripts/setup.sh installs what
 * the tests need), without recommends: those would bring crun and fuse3, which replaces the fuse
 * package encfs's tests use.
 */
export async function installPodman(log: (line: string) => void): Promise<void> {
  const missing: string[] = []
  for (const [cmd, pkg] of [
    ['podman', 'podman'],
    ['runc', 'runc'],
    ['debootstrap', 'debootstrap'],
  ] as const) {
    if (!(await onPath(cmd))) missing.push(pkg)
  }
  if (missing.length === 0) return
  if (process.getuid?.() !== 0 || !(await onPath('apt-get')))
    throw new Error(`the image test needs Debian's ${missing.join(', ')}: apt-get install --no-install-recommends ${missing.join(' ')}`)
  log(`installing Debian packages: ${missing.join(' ')}`)
  const env = { ...ENV, DEBIAN_FRONTEND: 'noninteractive' }
  const update = await runProgram('apt-get', ['update', '-qq'], { env, timeoutMs: 600_000 })
  if (update.code !== 0) throw new Error(`apt-get update failed: ${update.stderr}`)
  const install = await runProgram('apt-get', ['install', '-y', '-qq', '--no-install-recommends', '-o', 'DPkg::Lock::Timeout=600', ...missing], { env, timeoutMs: 900_000 })
  if (install.code !== 0) throw new Error(`apt-get install ${missing.join(' ')} failed: ${install.stderr}`)
}

export interface Built {
  buildMs: number
  sizeBytes: number
}

/**
 * The base (debootstrapped once, then cached) and the image, built by docker/encfs/build.sh from
 * the unchanged Dockerfile. The machine's CA bundle (which holds the registry proxy's CA) is a
 * build secret. Images the build left untagged are removed; the image, its build stage and their
 * layers stay in the cache, so an unchanged npm lock file does not download the packages again.
 */
export async function buildImage(log: (line: string) => void): Promise<Built> {
  await installPodman(log)
  await mkdir(path.join(RUN_ROOT, 'tmp'), { recursive: true })
  const env = { ...ENV, ENCFS_ENGINE: PODMAN.join(' '), ENCFS_IMAGE_CACHE: IMAGE_CACHE }
  await runStreaming('bash', [path.join(REPO, 'docker', 'base', 'trixie-slim.sh')], env, log)
  const ca = '/etc/ssl/certs/ca-certificates.crt'
  const hasCa = await access(ca).then(
    () => true,
    () => false,
  )
  const build = (tag: string, flags: string) =>
    runStreaming(
      'bash',
      [path.join(REPO, 'docker', 'encfs', 'build.sh'), tag],
      { ...env, ENCFS_BUILD_FLAGS: `--pull=never --network host ${flags}`, ...(hasCa ? { ENCFS_BUILD_CA: ca } : {}) },
      log,
    )
  const start = Date.now()
  // The build stage, tagged, keeps its layers (apt, npm ci) from the prune below: the next build reuses them.
  await build(BUILD_STAGE, '--target build')
  await build(IMAGE, '')
  const buildMs = Date.now() - start
  await podman(['image', 'prune', '--force'])
  const sizeBytes = Number((await podmanOk(['image', 'inspect', '--format', '{{.Size}}', IMAGE])).trim())
  return { buildMs, sizeBytes }
}

export interface RunOptions {
  env?: Record<string, string>
  /** `host:container[:options]` */
  volumes?: string[]
  privileged?: boolean
  /** Replaces the image's entry point, as a pod's `command` does. */
  entrypoint?: string
  /** The image's CMD replaced, as a pod's `args` (or after `entrypoint`). */
  args?: string[]
}

/** A container started by the test (host network, as the containers of a pod share one). */
export class Container {
  readonly started = Date.now()
  constructor(readonly name: string) {}

  logs(): Promise<string> {
    return podman(['logs', this.name]).then((r) => r.stdout + r.stderr)
  }

  /** Runs `script` with sh in the container; `input`, when given, is its standard input. */
  exec(script: string, timeoutMs = 60_000, input?: Buffer): Promise<Result> {
    return podman(['exec', ...(input ? ['--interactive'] : []), this.name, 'sh', '-c', script], timeoutMs, input)
  }

  /** PID of the container's first process on the host (its mount namespace is the container's). */
  async pid(): Promise<number> {
    return Number((await podmanOk(['inspect', '--format', '{{.State.Pid}}', this.name])).trim())
  }

  /** `podman stop -t <grace>` as the kubelet stops a container: SIGTERM, SIGKILL after the grace period. */
  async stop(graceSeconds = 30): Promise<{ exitCode: number; ms: number }> {
    const start = Date.now()
    await podmanOk(['stop', '-t', String(graceSeconds), this.name], (graceSeconds + 60) * 1000)
    const ms = Date.now() - start
    return { exitCode: Number((await podmanOk(['inspect', '--format', '{{.State.ExitCode}}', this.name])).trim()), ms }
  }

  /** Resolves once its output matches `pattern`; its exit first, or the timeout, is an error with its output. */
  async waitForLog(pattern: RegExp, timeoutMs = 120_000): Promise<void> {
    await waitUntil(
      `${this.name} to log ${pattern}`,
      async () => {
        if (pattern.test(await this.logs())) return true
        if (!(await this.running())) throw new Error(`${this.name} exited:\n${await this.logs()}`)
        return false
      },
      { timeoutMs, intervalMs: 200, details: () => this.logs() },
    )
  }

  async running(): Promise<boolean> {
    const r = await podman(['inspect', '--format', '{{.State.Running}}', this.name])
    return r.stdout.trim() === 'true'
  }
}

let counter = 0

/** Starts a detached container from IMAGE; the caller removes it (`removeContainer`). */
export async function runContainer(role: string, o: RunOptions = {}): Promise<Container> {
  const name = `encfs-test-${process.pid}-${++counter}-${role}`
  const args = ['run', '--detach', '--name', name, '--network', 'host', '--pull', 'never']
  if (o.privileged) args.push('--privileged')
  for (const v of o.volumes ?? []) args.push('--volume', v)
  for (const [k, v] of Object.entries(o.env ?? {})) args.push('--env', `${k}=${v}`)
  if (o.entrypoint !== undefined) args.push('--entrypoint', o.entrypoint)
  args.push(IMAGE, ...(o.args ?? []))
  try {
    await podmanOk(args)
  } catch (err) {
    // A container created but not started stays in podman's storage, and the caller never got it to remove.
    await podman(['rm', '--force', '--time', '0', name])
    throw err
  }
  return new Container(name)
}

/** Removes the container, killing it if it still runs; nothing of it stays in the storage. */
export async function removeContainer(c: Container): Promise<void> {
  await podman(['rm', '--force', '--time', '0', c.name])
}

/** Containers of this test process that still exist (none may be left behind). */
export async function leftoverContainers(): Promise<string[]> {
  const out = await podmanOk(['ps', '--all', '--format', '{{.Names}}'])
  return out
    .split('\n')
    .filter((n) => n.startsWith(`encfs-test-${process.pid}-`))
    .sort()
}
