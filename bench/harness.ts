// The bench's measuring tools, kept apart from the scenarios so that test/bench/harness.test.ts
// can exercise them cheaply: interleaved rounds, per-round ratios and their spread, fio's JSON,
// /proc CPU and memory counters, dropping the page cache, and finding the external tools.
import { execFile, spawn } from 'node:child_process'
import { readFile, readdir, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { promisify } from 'node:util'

const exec = promisify(execFile)
export const MiB = 1024 * 1024

export interface Contender {
  name: string
  /** One measurement; higher is better (MB/s, IOPS). */
  run(): Promise<number>
}

/**
 * Runs every contender once per round, in the same order each round (A B C A B C ...), so that
 * each pair of neighbours saw the same machine state; the ratio of two contenders is taken per
 * round, and its spread across rounds says how much the machine moved under the measurement.
 */
export async function interleave(rounds: number, contenders: Contender[], onSample?: (name: string, round: number, value: number) => void): Promise<Map<string, number[]>> {
  const samples = new Map<string, number[]>(contenders.map((c) => [c.name, []]))
  for (let round = 0; round < rounds; round++) {
    for (const c of contenders) {
      const value = await c.run()
      samples.get(c.name)!.push(value)
      onSample?.(c.name, round, value)
    }
  }
  return samples
}

export interface Summary {
  median: number
  min: number
  max: number
  n: number
}

export function summarize(values: readonly number[]): Summary {
  if (values.length === 0) return { median: Number.NaN, min: Number.NaN, max: Number.NaN, n: 0 }
  const s = [...values].sort((a, b) => a - b)
  const mid = Math.floor(s.length / 2)
  const median = s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2
  return { median, min: s[0]!, max: s[s.length - 1]!, n: s.length }
}

/** a[i] / b[i] for each round both were measured in. */
export function pairedRatios(a: readonly number[], b: readonly number[]): number[] {
  const n = Math.min(a.length, b.length)
  const out: number[] = []
  for (let i = 0; i < n; i++) if (b[i]! > 0) out.push(a[i]! / b[i]!)
  return out
}

/** "0.84 (0.80-0.91)": the median ratio and its range across rounds. */
export function formatRatio(r: readonly number[]): string {
  const s = summarize(r)
  if (s.n === 0) return '-'
  return s.n === 1 ? s.median.toFixed(2) : `${s.median.toFixed(2)} (${s.min.toFixed(2)}-${s.max.toFixed(2)})`
}

export function formatValue(values: readonly number[], digits = 0): string {
  const s = summarize(values)
  if (s.n === 0) return '-'
  return s.n === 1 ? s.median.toFixed(digits) : `${s.median.toFixed(digits)} (${s.min.toFixed(digits)}-${s.max.toFixed(digits)})`
}

/** A plain-text table with right-aligned numeric columns after the first. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)))
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!)))
      .join('  ')
      .trimEnd()
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n')
}

export function mbps(bytes: number, ms: number): number {
  return bytes / 1e6 / (ms / 1000)
}

export interface FioGroup {
  /** Name of the group's first job. */
  name: string
  ioBytes: number
  iops: number
  /** Bytes per second. */
  bw: number
  runtimeMs: number
}

/** fio --output-format=json, one entry per reporting group (jobs of a group summed). */
export function parseFio(json: string): FioGroup[] {
  // fio may print notes before the JSON document.
  const start = json.indexOf('{')
  if (start < 0) throw new Error(`fio printed no JSON: ${json.slice(0, 200)}`)
  const doc = JSON.parse(json.slice(start)) as { jobs?: { jobname: string; groupid: number; read: { io_bytes: number; iops: number; bw_bytes: number; runtime: number } }[] }
  const groups = new Map<number, FioGroup>()
  for (const j of doc.jobs ?? []) {
    const g = groups.get(j.groupid) ?? { name: j.jobname, ioBytes: 0, iops: 0, bw: 0, runtimeMs: 0 }
    g.ioBytes += j.read.io_bytes
    g.iops += j.read.iops
    g.bw += j.read.bw_bytes
    g.runtimeMs = Math.max(g.runtimeMs, j.read.runtime)
    groups.set(j.groupid, g)
  }
  return [...groups.entries()].sort((a, b) => a[0] - b[0]).map(([, g]) => g)
}

export interface FioJob {
  name: string
  file: string
  rw: 'read' | 'randread'
  bs: string
  numjobs?: number
  direct?: boolean
  /** Run for this long, looping over the file; without it, one pass over the file (capped at an hour). */
  seconds?: number
  /** Log every I/O's completion time under this path prefix (see iosWithin). */
  iopsLog?: string
}

/** Runs fio jobs at once, each job its own reporting group. */
export async function runFio(jobs: FioJob[]): Promise<FioGroup[]> {
  const args = ['--output-format=json', '--ioengine=psync', '--group_reporting', '--randrepeat=0']
  jobs.forEach((j, i) => {
    args.push(`--name=${j.name}`, `--filename=${j.file}`, `--rw=${j.rw}`, `--bs=${j.bs}`, `--numjobs=${j.numjobs ?? 1}`, `--direct=${j.direct === false ? 0 : 1}`)
    args.push(...(j.seconds !== undefined ? ['--time_based', `--runtime=${j.seconds}`] : ['--runtime=3600']))
    if (j.iopsLog) args.push(`--write_iops_log=${j.iopsLog}`)
    if (i > 0) args.push('--new_group')
  })
  const { stdout } = await exec('fio', args, { maxBuffer: 64 * MiB })
  return parseFio(stdout)
}

/** I/Os completed within the first `ms` of the run, from fio's per-I/O logs `<prefix>_iops.N.log`. */
export async function iosWithin(prefix: string, ms: number): Promise<number> {
  const dir = path.dirname(prefix)
  const base = `${path.basename(prefix)}_iops.`
  let n = 0
  for (const f of (await readdir(dir)).filter((x) => x.startsWith(base))) {
    for (const line of (await readFile(path.join(dir, f), 'utf8')).split('\n')) {
      const t = Number.parseInt(line, 10)
      if (Number.isFinite(t) && t <= ms) n++
    }
  }
  return n
}

/** utime + stime of a process, in seconds, from /proc/PID/stat. */
export function parseProcStatCpu(stat: string, ticksPerSecond = 100): number {
  // The command name (field 2) may contain spaces and parentheses: fields are counted after the last ')'.
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  // rest[0] is field 3 (state); utime and stime are fields 14 and 15.
  const utime = Number(rest[11])
  const stime = Number(rest[12])
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) throw new Error(`unexpected /proc/PID/stat: ${stat.slice(0, 120)}`)
  return (utime + stime) / ticksPerSecond
}

export async function processCpuSeconds(pid: number): Promise<number> {
  return parseProcStatCpu(await readFile(`/proc/${pid}/stat`, 'utf8'))
}

/** Peak resident set (VmHWM) in MiB from /proc/PID/status. */
export function parseVmHwmMiB(status: string): number {
  const kb = /VmHWM:\s+(\d+)\s*kB/.exec(status)?.[1]
  if (kb === undefined) throw new Error('no VmHWM in /proc/PID/status')
  return Number(kb) / 1024
}

export async function peakRssMiB(pid: number): Promise<number> {
  return parseVmHwmMiB(await readFile(`/proc/${pid}/status`, 'utf8'))
}

/** Resident set now (VmRSS) in MiB. */
export async function rssMiB(pid: number): Promise<number> {
  const kb = /VmRSS:\s+(\d+)\s*kB/.exec(await readFile(`/proc/${pid}/status`, 'utf8'))?.[1]
  if (kb === undefined) throw new Error('no VmRSS in /proc/PID/status')
  return Number(kb) / 1024
}

/**
 * Cold reads: write back dirty pages and drop the page cache (root only); then read `warm`
 * (Azurite's data) back in, so that storage answers from memory for every contender alike and
 * only the reader's side is cold.
 */
export async function dropCaches(warm: string[] = []): Promise<void> {
  await exec('sync')
  await writeFile('/proc/sys/vm/drop_caches', '3\n')
  for (const dir of warm) await exec('sh', ['-c', 'find "$1" -type f -exec cat {} + > /dev/null', 'sh', dir], { maxBuffer: MiB })
}

/** `dd` in a child process, as an application would read; resolves with the elapsed ms. */
export function ddRead(file: string, o: { bs?: string; count?: number; direct?: boolean } = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    const args = [`if=${file}`, 'of=/dev/null', `bs=${o.bs ?? '1M'}`, 'status=none', ...(o.count !== undefined ? [`count=${o.count}`] : []), ...(o.direct ? ['iflag=direct'] : [])]
    const started = performance.now()
    const child = spawn('dd', args, { stdio: ['ignore', 'ignore', 'pipe'] })
    let err = ''
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString()
    })
    child.on('error', reject)
    child.on('exit', (code) => (code === 0 ? resolve(performance.now() - started) : reject(new Error(`dd ${args.join(' ')} failed (${code}): ${err.trim()}`))))
  })
}

/** The Debian package that provides each external tool the bench drives. */
export const TOOL_PACKAGES: Record<string, string> = { fio: 'fio', rclone: 'rclone', fusermount: 'fuse', dd: 'coreutils', curl: 'curl' }

export async function hasTool(cmd: string): Promise<boolean> {
  return exec('sh', ['-c', `command -v ${cmd}`]).then(
    () => true,
    () => false,
  )
}

/** Installs missing tools with apt-get when root, else fails naming the packages to install. */
export async function ensureTools(tools: string[], log: (s: string) => void = () => {}): Promise<void> {
  const missing: string[] = []
  for (const t of tools) if (!(await hasTool(t))) missing.push(TOOL_PACKAGES[t] ?? t)
  if (missing.length === 0) return
  const pkgs = [...new Set(missing)]
  if (process.getuid?.() !== 0 || !(await hasTool('apt-get'))) {
    throw new Error(`the bench needs ${pkgs.join(', ')}: install them (apt-get install ${pkgs.join(' ')}) and run again`)
  }
  log(`installing ${pkgs.join(' ')} with apt-get`)
  await exec('apt-get', ['update', '-qq'], { env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } })
  await exec('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...pkgs], { env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }, maxBuffer: 16 * MiB })
  for (const t of tools) if (!(await hasTool(t))) throw new Error(`${t} is still missing after apt-get install ${pkgs.join(' ')}`)
}

/** Runs a bench's main: a failure is one message on stderr and a non-zero exit. */
export function runBench(main: () => Promise<void>): void {
  main().then(
    () => process.exit(0),
    (err: unknown) => {
      process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`)
      process.exit(1)
    },
  )
}
