// The data-path bench: every row of issues #11 and #26 measured side by side in one run, under two
// storage profiles (Azurite on loopback, and behind a proxy that puts it at a VM's distance),
// contenders interleaved round by round (A B C A B C ...), each ratio taken within a round and
// printed with its spread across rounds. Needs root (FUSE, loop, dropping the page cache), fio
// and curl; rclone when it can be installed.
//
//   npm run bench                 full run, about 20 minutes on 2 cores
//   npm run bench -- --quick      small sizes, 2 rounds: a smoke test
//
// See docs/data-path.md for what the rows mean and what they showed.
import yargs from 'yargs'
import os from 'node:os'
import { readFile } from 'node:fs/promises'
import { MiB, ensureTools, hasTool, runBench, formatRatio, formatValue, interleave, pairedRatios, summarize, table, type Contender } from './harness.js'
import { buildScenario } from './scenario.js'
import * as rows from './rows.js'
import { calibrate, firstByteGroup, randomGroup, sequentialGroup, type ReadOptions, type Section, type TargetResult } from './read-groups.js'
import { latency, loopback, LATENCY_DELAY_MS, LATENCY_MIB_PER_SECOND, type Profile } from './profiles.js'
import { rawParallel, rawDownload, sdkDownloadRanges, pipelineRanges, type RawKind } from './raw-clients.js'
import { availableFuseBackends } from '../src/fuse/backend.js'
import { DEFAULT_MEMORY_BYTES } from '../src/cache/block-cache.js'

const args = yargs(process.argv.slice(2))
  .option('quick', { type: 'boolean', default: false, describe: 'small sizes and 2 rounds (smoke test)' })
  .option('rounds', { type: 'number', describe: 'rounds of every group (default 4, quick 2)' })
  .option('seconds', { type: 'number', describe: 'length of each timed fio / random run (default 6, quick 2)' })
  .option('big-mib', { type: 'number', describe: 'sequential file size (default 256, quick 160; larger than the 128 MiB cache, so a second pass is cold too)' })
  .option('rand-mib', { type: 'number', describe: 'random file size (default 256, quick 64)' })
  .option('write-mib', { type: 'number', describe: 'read-write row size (default 256, quick 32)' })
  .option('profiles', { type: 'string', default: 'loopback,latency', describe: 'storage profiles of the read rows: loopback, latency' })
  .option('groups', { type: 'string', default: 'seq,random,first,write', describe: 'comma-separated groups to run (also: http)' })
  .option('delay-ms', { type: 'number', default: LATENCY_DELAY_MS, describe: 'latency profile: delay of every request' })
  .option('mib-per-second', { type: 'number', default: LATENCY_MIB_PER_SECOND, describe: 'latency profile: cap of every connection' })
  .option('explain', {
    type: 'boolean',
    default: true,
    describe: 'also the rows that explain (the FUSE file alone, Go azmount, the SDK client, the Node.js HTTP client in the mount)',
  })
  .strict()
  .parseSync()

const quick = args.quick
const rounds = args.rounds ?? (quick ? 2 : 4)
const seconds = args.seconds ?? (quick ? 2 : 6)
const sizes = { bigMiB: args['big-mib'] ?? (quick ? 160 : 256), randMiB: args['rand-mib'] ?? (quick ? 64 : 256), writeMiB: args['write-mib'] ?? (quick ? 32 : 256) }
const groups = new Set(args.groups.split(','))
const log = (s: string) => process.stderr.write(`bench: ${s}\n`)
const out = (s = '') => process.stdout.write(`${s}\n`)
const load = () =>
  os
    .loadavg()
    .map((l) => l.toFixed(1))
    .join(' ')

const CONFIGS: [RawKind, number, number][] = quick
  ? [
      ['sdk', 8, 8],
      ['native', 8, 8],
      ['native', 8, 16],
      ['curl', 8, 8],
      ['curl', 8, 16],
    ]
  : [
      ['sdk', 8, 8],
      ['sdk', 16, 8],
      ['get', 8, 8],
      ['native', 8, 8],
      ['native', 8, 16],
      ['native', 16, 8],
      ['curl', 8, 8],
      ['curl', 8, 16],
      ['curl', 16, 8],
    ]

function print(s: Section): void {
  out(`\n## ${s.title}\n\n${s.body}`)
}

/** The closing table: every target of every profile, its median and spread, and whether the median meets it. */
function summary(targets: TargetResult[]): Section {
  return {
    title: 'targets (median (min-max) over rounds; met = the median meets the goal)',
    body: table(
      ['target', 'profile', 'measured', 'value', 'goal', 'met'],
      targets.map((t) => {
        const m = summarize(t.values).median
        return [
          t.target,
          t.profile,
          t.measured,
          formatRatio(t.values),
          `${t.atLeast ? '>=' : '<='} ${t.goal}`,
          Number.isNaN(m) ? '-' : (t.atLeast ? m >= t.goal : m <= t.goal) ? 'yes' : 'no',
        ]
      }),
    ),
  }
}

async function readRows(p: Profile, backend: string, rclone: boolean, buf: Buffer, targets: TargetResult[]): Promise<void> {
  const scn = p.scn
  out(`\n# profile: ${p.title}`)
  const o: ReadOptions = { rounds, seconds, backend, rclone, explain: args.explain, log }
  const cal = await calibrate(scn, scn.sizes.bigMiB * MiB, buf, CONFIGS, quick ? 1 : 2, log)
  print(cal.section)
  if (groups.has('seq')) {
    const seq = await sequentialGroup(scn, o, cal.best, buf, args.explain && scn.profile === 'loopback' ? ['node'] : [])
    seq.sections.forEach(print)
    targets.push(...seq.targets)
    if (scn.profile === 'loopback') targets.push(...resources(seq.notes.get('default') ?? [], seq.inProcCpu))
  }
  if (groups.has('random')) {
    const bestCurl = cal.best.get('curl') ?? cal.best.get('native')!
    const download = () => rawParallel(cal.best.has('curl') ? 'curl' : 'native', scn.blockUrl, scn.sizes.bigMiB * MiB, bestCurl.bs * MiB, bestCurl.c, buf)
    const r = await randomGroup(scn, o, download)
    r.sections.forEach(print)
    targets.push(...r.targets)
  }
  if (groups.has('first')) {
    const f = await firstByteGroup(scn, o)
    f.sections.forEach(print)
    targets.push(...f.targets)
  }
}

/** remotefs's memory and CPU during the loopback mounted read, with the default configuration. */
function resources(notes: rows.MountedSeq[], inProcCpu: number[]): TargetResult[] {
  const budget = DEFAULT_MEMORY_BYTES / MiB
  print({
    title: `remotefs resources during the mounted sequential read (default configuration: cache budget ${budget} MiB)`,
    body: table(
      ['what', 'value'],
      [
        [`peak RSS, MiB; target <= ${budget + 64}`, formatValue(notes.map((n) => n.peakRssMiB))],
        ['  RSS once mounted, before reading', formatValue(notes.map((n) => n.idleRssMiB))],
        ['  peak - mounted: what reading added', formatValue(notes.map((n) => n.peakRssMiB - n.idleRssMiB))],
        [
          'CPU s per GB served',
          formatValue(
            notes.map((n) => n.cpuPerGB),
            2,
          ),
        ],
        [`  / in-process CPU s per GB (${formatValue(inProcCpu, 2)})`, formatRatio(notes.map((n, i) => n.cpuPerGB / (inProcCpu[i] ?? Number.NaN)))],
        ['start to mounted, ms, KDF excluded', formatValue(notes.map((n) => n.startMs - n.kdfMs))],
      ],
    ),
  })
  return [
    {
      target: '4. peak RSS, MiB (default configuration)',
      profile: 'loopback',
      measured: 'VmHWM of remotefs over the cold read',
      values: notes.map((n) => n.peakRssMiB),
      goal: budget + 64,
      atLeast: false,
    },
  ]
}

async function writeRows(scn: Profile['scn'], backend: string, buf: Buffer): Promise<TargetResult[]> {
  const data = buf.subarray(0, sizes.writeMiB * MiB)
  ;(await readFile(scn.writeSource)).copy(data)
  const rawSdk = 'raw Put Page upload 4 MiB x 8 (SDK)'
  const rawCurl = 'raw Put Page upload 4 MiB x 8 (libcurl)'
  const mountedName = `mounted read-write: dd bs=1M conv=fsync (${backend})`
  const contenders: Contender[] = [
    { name: rawSdk, run: () => rows.rawPutPages(scn, data, 'sdk') },
    { name: rawCurl, run: () => rows.rawPutPages(scn, data, 'curl') },
    { name: mountedName, run: () => rows.mountedWrite(scn, backend) },
    // The fallback where libcurl does not load: Put Page by the SDK, write-backs copied into snapshots.
    ...(args.explain ? [{ name: `mounted read-write: dd bs=1M conv=fsync (${backend}, --http node)`, run: () => rows.mountedWrite(scn, backend, 'node') }] : []),
  ]
  const s = await interleave(Math.max(2, Math.ceil(rounds / 2)), contenders, (n, r, v) => log(`write round ${r + 1}: ${n}: ${v.toFixed(0)} MB/s`))
  const rawS = s.get(rawSdk)!
  const bestRaw = rawS.map((v, i) => Math.max(v, s.get(rawCurl)![i] ?? 0))
  print({
    title: `loopback: ${sizes.writeMiB} MiB written and fsynced on a page blob (target >= 0.7 x raw Put Page)`,
    body: table(
      ['what', 'MB/s', 'of raw (SDK)', 'of the best raw'],
      [...s.entries()].map(([n, v]) => [n, formatValue(v), formatRatio(pairedRatios(v, rawS)), formatRatio(pairedRatios(v, bestRaw))]),
    ),
  })
  return [
    {
      target: '5. write + fsync / raw Put Page (the SDK)',
      profile: 'loopback',
      measured: `${mountedName} / ${rawSdk}`,
      values: pairedRatios(s.get(mountedName)!, rawS),
      goal: 0.7,
      atLeast: true,
    },
  ]
}

async function httpRows(url: string, bytes: number, buf: Buffer): Promise<void> {
  const range = 8 * MiB
  const contenders: Contender[] = [
    { name: 'SDK downloadToBuffer 8 MiB x 8', run: () => rawDownload(url, bytes, range, 8, buf) },
    { name: 'SDK BlobClient.download() 8 MiB x 8, body copied', run: () => sdkDownloadRanges(url, bytes, range, 8, buf) },
    { name: 'RangedGet (core-rest-pipeline) 8 MiB x 8', run: () => pipelineRanges(url, bytes, range, 8, buf) },
  ]
  const s = await interleave(rounds, contenders, (n, r, v) => log(`http round ${r + 1}: ${n}: ${v.toFixed(0)} MB/s`))
  const refS = s.values().next().value!
  print({
    title: 'HTTP client: the SDK download path against a direct ranged GET',
    body: table(
      ['what', 'MB/s', 'ratio'],
      [...s.entries()].map(([n, v]) => [n, formatValue(v), formatRatio(pairedRatios(v, refS))]),
    ),
  })
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('the bench mounts FUSE and loop devices and drops the page cache: run it as root')
  await ensureTools(['fio', 'fusermount', 'dd', 'curl'], log)
  const rclone = await ensureTools(['rclone'], log).then(
    () => true,
    (err: unknown) => {
      log(`rclone is not available, its rows are left out: ${(err as Error).message}`)
      return false
    },
  )
  const backend = (await availableFuseBackends())[0]!
  log(`FUSE backend ${backend}; ${rounds} rounds; ${os.cpus().length} CPUs; load ${load()}; curl ${(await hasTool('curl')) ? 'yes' : 'no'}`)
  const began = performance.now()
  const scn = await buildScenario(sizes, log)
  const buf = Buffer.alloc(Math.max(sizes.bigMiB, sizes.writeMiB) * MiB)
  const targets: TargetResult[] = []
  try {
    out(
      `# encfs data-path bench  (${quick ? 'quick' : 'full'}: ${rounds} rounds, blob ${(scn.blobBytes / MiB).toFixed(0)} MiB, big.bin ${sizes.bigMiB} MiB, rand.bin ${sizes.randMiB} MiB, timed runs ${seconds} s; ${os.cpus().length} CPUs, load ${load()})`,
    )
    out('values: median (min-max) over rounds; ratios are taken within each round, then summarised the same way')
    for (const name of args.profiles.split(',')) {
      const p = name === 'latency' ? await latency(scn, args['delay-ms'], args['mib-per-second']) : loopback(scn)
      try {
        await readRows(p, backend, rclone, buf, targets)
      } finally {
        await p.stop()
      }
    }
    if (groups.has('write')) targets.push(...(await writeRows(scn, backend, buf)))
    if (groups.has('http')) await httpRows(scn.blockUrl, sizes.bigMiB * MiB, buf)
    print(summary(targets))
    out(`\nbench took ${((performance.now() - began) / 60000).toFixed(1)} min; load now ${load()}`)
  } finally {
    await scn.cleanup()
  }
}

runBench(main)
