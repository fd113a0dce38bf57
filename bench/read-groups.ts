// The read rows of one storage profile: sequential (raw clients, the mount, its parts, the peers),
// random 4 KiB, the mixed load and the first byte of a cold file. Each group interleaves its
// contenders round by round and returns its printed sections and the targets it measured.
import { MiB, formatRatio, formatValue, interleave, pairedRatios, summarize, table, type Contender } from './harness.js'
import { RAW_CLIENT_NAMES, goSerial, oneGetMs, rawParallel, rawRandom4k, type RawKind } from './raw-clients.js'
import * as rows from './rows.js'
import type { Scenario } from './scenario.js'
import type { BlobHttpClient } from '../src/storage/blob-http.js'

export interface Section {
  title: string
  body: string
}

/** One target as measured in one profile: the per-round ratios (or values), the goal and which way it points. */
export interface TargetResult {
  target: string
  profile: string
  /** What was divided by what, with the best raw client named. */
  measured: string
  values: number[]
  goal: number
  /** true: the value must be at least the goal; false: at most. */
  atLeast: boolean
}

export interface GroupResult {
  sections: Section[]
  targets: TargetResult[]
}

export interface ReadOptions {
  rounds: number
  seconds: number
  backend: string
  /** rclone is installed: its mount is measured as the peer. */
  rclone: boolean
  /** Also the rows that only explain (in-process pipeline with the Node.js client, Go azmount, the FUSE file alone). */
  explain: boolean
  log(s: string): void
}

const mounted = 'mounted: dd of big.bin in ext4'

/** The best (kind, range MiB, concurrency) of each raw client here, by median over `rounds` interleaved tries. */
export async function calibrate(scn: Scenario, bytes: number, buf: Buffer, configs: [RawKind, number, number][], rounds: number, log: (s: string) => void) {
  const name = (k: RawKind, bs: number, c: number) => `${RAW_CLIENT_NAMES[k]} ${bs} MiB x ${c}`
  // A first download warms Azurite, the proxy and the JIT.
  await rawParallel('native', scn.blockUrl, bytes, 8 * MiB, 8, buf)
  await rawParallel('sdk', scn.blockUrl, bytes, 8 * MiB, 8, buf)
  const cal = await interleave(
    rounds,
    configs.map(([k, bs, c]) => ({ name: name(k, bs, c), run: () => rawParallel(k, scn.blockUrl, bytes, bs * MiB, c, buf) })),
    (n, r, v) => log(`${scn.profile} calibration ${r + 1}: ${n}: ${v.toFixed(0)} MB/s`),
  )
  const best = new Map<RawKind, { bs: number; c: number; mbps: number }>()
  configs.forEach(([k, bs, c]) => {
    const m = summarize(cal.get(name(k, bs, c))!).median
    if (m > (best.get(k)?.mbps ?? 0)) best.set(k, { bs, c, mbps: m })
  })
  const section: Section = {
    title: `${scn.profile}: raw parallel download settings (each client's best setting is its contender below)`,
    body: table(
      ['setting', 'MB/s'],
      [...cal.entries()].map(([n, v]) => [n, formatValue(v)]),
    ),
  }
  return { best, section }
}

/** Per round, the best of the raw clients' values and which client it was. */
function bestPerRound(raw: Map<string, number[]>): { values: number[]; names: string[] } {
  const rounds = Math.min(...[...raw.values()].map((v) => v.length))
  const values: number[] = []
  const names: string[] = []
  for (let i = 0; i < rounds; i++) {
    let best = ''
    let v = 0
    for (const [n, s] of raw) if (s[i]! > v) [best, v] = [n, s[i]!]
    values.push(v)
    names.push(best)
  }
  return { values, names }
}

/** The client that was best in most rounds, with how many. */
function mostOften(names: string[]): string {
  const counts = new Map<string, number>()
  for (const n of names) counts.set(n, (counts.get(n) ?? 0) + 1)
  const [name, n] = [...counts].sort((a, b) => b[1] - a[1])[0] ?? ['-', 0]
  return n === names.length ? name : `${name} (best in ${n} of ${names.length} rounds; per round the best is taken)`
}

export interface SeqResult extends GroupResult {
  /** remotefs's resources during the mounted read of each backend / client. */
  notes: Map<string, rows.MountedSeq[]>
  inProcCpu: number[]
}

export async function sequentialGroup(
  scn: Scenario,
  o: ReadOptions,
  best: Map<RawKind, { bs: number; c: number }>,
  buf: Buffer,
  mountedHttp: BlobHttpClient[] = [],
): Promise<SeqResult> {
  const bytes = scn.sizes.bigMiB * MiB
  const rawNames = new Map<string, RawKind>()
  const raws: Contender[] = [...best].map(([k, { bs, c }]) => {
    const name = `raw: ${RAW_CLIENT_NAMES[k]}, ${bs} MiB x ${c}`
    rawNames.set(name, k)
    return { name, run: () => rawParallel(k, scn.blockUrl, bytes, bs * MiB, c, buf) }
  })
  const notes = new Map<string, rows.MountedSeq[]>()
  const inProcCpu: number[] = []
  const mount = (http?: BlobHttpClient): Contender => ({
    name: `${mounted} (${o.backend}${http ? `, ${http === 'native' ? 'libcurl' : 'Node.js'} HTTP` : ''})`,
    run: async () => {
      const r = await rows.mountedSequential(scn, o.backend, false, http)
      const key = http ?? 'default'
      notes.set(key, [...(notes.get(key) ?? []), r])
      return r.mbps
    },
  })
  const contenders: Contender[] = [
    ...raws,
    mount(),
    ...mountedHttp.map((h) => mount(h)),
    {
      name: 'in-process: BlobSource+BlockCache+LuksVolume (libcurl)',
      run: async () => {
        const r = await rows.inProcess(scn.blockUrl, scn.image.key, bytes, 'native')
        inProcCpu.push(r.cpuPerGB)
        return r.mbps
      },
    },
    ...(o.explain ? [{ name: `FUSE data file alone, dd bs=1M (${o.backend})`, run: () => rows.fuseFileRead(scn, o.backend) }] : []),
    ...(o.rclone ? [{ name: 'rclone mount of the blob (peer: ciphertext, no ext4)', run: () => rows.rcloneRead(scn) }] : []),
    ...(o.explain ? [{ name: 'Go azmount: 512 KiB ranges, serial (64 MiB)', run: () => goSerial(scn.blockUrl, Math.min(bytes, 64 * MiB), buf) }] : []),
  ]
  const s = await interleave(o.rounds, contenders, (n, r, v) => o.log(`${scn.profile} seq round ${r + 1}: ${n}: ${v.toFixed(0)} MB/s`))
  const rawSamples = new Map([...s].filter(([n]) => rawNames.has(n)))
  const bestRaw = bestPerRound(rawSamples)
  const mountS = s.get(contenders[raws.length]!.name)!
  const rclone = s.get('rclone mount of the blob (peer: ciphertext, no ext4)')
  const header = ['what', 'MB/s', 'of the best raw client', ...(rclone ? ['of rclone mount'] : [])]
  const lines = [...s].map(([n, v]) => [n, formatValue(v), formatRatio(pairedRatios(v, bestRaw.values)), ...(rclone ? [formatRatio(pairedRatios(v, rclone))] : [])])
  // What the mount moved for it: readahead runs past the file's end (the cache sees blocks, not files), which the raw clients never fetch.
  const fetched = (notes.get('default') ?? []).map((n) => n.fetchedPerByte)
  lines.splice(raws.length + 1, 0, ['  bytes fetched per byte read (readahead past the end of the file)', formatValue(fetched, 2), '', ...(rclone ? [''] : [])])
  const body = table(header, lines)
  const bestName = mostOften(bestRaw.names)
  return {
    sections: [{ title: `${scn.profile}: sequential read of a ${scn.sizes.bigMiB} MiB file, cold (best raw client: ${bestName})`, body }],
    targets: [
      {
        target: '1/2. cold sequential read in the mount / best raw client',
        profile: scn.profile,
        measured: `${mounted} / ${bestName}`,
        values: pairedRatios(mountS, bestRaw.values),
        goal: 0.9,
        atLeast: true,
      },
    ],
    notes,
    inProcCpu,
  }
}

export async function randomGroup(scn: Scenario, o: ReadOptions, download: () => Promise<number>): Promise<GroupResult> {
  const amp: number[] = []
  const mixedSeq: number[] = []
  const rawGet = 'raw 4 KiB GETs x 4: RangedGet (SDK pipeline)'
  const rawCurl = 'raw 4 KiB GETs x 4: libcurl (native fetcher)'
  const fio = `mounted: fio randread 4k psync 4 jobs (${o.backend})`
  const seqAlone = `mounted: fio read 1M, one pass, alone (${o.backend})`
  const randMixed = `mounted: fio randread 4k x 4 while the fio read 1M pass runs (${o.backend})`
  const rawMixedName = 'raw 4 KiB GETs x 4 while a raw download runs (storage alone)'
  const contenders: Contender[] = [
    { name: rawGet, run: () => rawRandom4k(scn.blockUrl, scn.blobBytes, o.seconds, 4, 'pipeline') },
    { name: rawCurl, run: () => rawRandom4k(scn.blockUrl, scn.blobBytes, o.seconds, 4, 'native') },
    ...(o.explain ? [{ name: 'raw 4 KiB GETs x 4: BlobClient.download() (SDK)', run: () => rawRandom4k(scn.blockUrl, scn.blobBytes, o.seconds, 4, 'sdk') }] : []),
    {
      name: fio,
      run: async () => {
        const r = await rows.mountedRandom(scn, o.seconds, o.backend)
        amp.push(r.amplification)
        return r.iops
      },
    },
    { name: rawMixedName, run: () => rows.rawMixed(scn, Math.min(o.seconds, 2), download) },
    { name: seqAlone, run: () => rows.mountedSeqFio(scn, o.backend) },
    {
      name: randMixed,
      run: async () => {
        const r = await rows.mountedMixed(scn, o.seconds, o.backend)
        mixedSeq.push(r.seqMBps)
        return r.randIops
      },
    },
  ]
  const s = await interleave(o.rounds, contenders, (n, r, v) => o.log(`${scn.profile} random round ${r + 1}: ${n}: ${v.toFixed(0)}`))
  const best = bestPerRound(new Map([rawGet, rawCurl].map((n) => [n, s.get(n)!])))
  const bestName = mostOften(best.names)
  const randS = s.get(fio)!
  const body = table(
    ['what', 'IOPS', 'of the best raw client'],
    [
      ...[...s].filter(([n]) => n.startsWith('raw 4 KiB GETs x 4:') || n === fio).map(([n, v]) => [n, formatValue(v), formatRatio(pairedRatios(v, best.values))]),
      ['  read amplification (bytes fetched / bytes read); target <= 2', formatValue(amp, 2), ''],
    ],
  )
  const seqS = s.get(seqAlone)!
  const randMixedS = s.get(randMixed)!
  const rawMixedS = s.get(rawMixedName)!
  const mixedBody = table(
    ['what', 'alone', 'together', 'kept'],
    [
      ['storage alone: raw random GETs beside a raw download, IOPS', formatValue(s.get(rawGet)!), formatValue(rawMixedS), formatRatio(pairedRatios(rawMixedS, s.get(rawGet)!))],
      ['sequential fio read 1M, one pass, MB/s', formatValue(seqS), formatValue(mixedSeq), formatRatio(pairedRatios(mixedSeq, seqS))],
      ['random fio randread 4k x 4, IOPS', formatValue(randS), formatValue(randMixedS), formatRatio(pairedRatios(randMixedS, randS))],
    ],
  )
  return {
    sections: [
      { title: `${scn.profile}: random 4 KiB reads (best raw client: ${bestName})`, body },
      { title: `${scn.profile}: mixed, a sequential and a random reader at once (each keeps >= 0.5 of its solo rate)`, body: mixedBody },
    ],
    targets: [
      {
        target: '2/5. random 4 KiB in the mount / best raw GETs x 4',
        profile: scn.profile,
        measured: `${fio} / ${bestName}`,
        values: pairedRatios(randS, best.values),
        goal: 0.95,
        atLeast: true,
      },
      {
        target: '3. mixed: the sequential reader keeps of its solo rate',
        profile: scn.profile,
        measured: 'fio read 1M beside fio randread 4k x 4',
        values: pairedRatios(mixedSeq, seqS),
        goal: 0.5,
        atLeast: true,
      },
      {
        target: '3. mixed: the random reader keeps of its solo rate',
        profile: scn.profile,
        measured: 'fio randread 4k x 4 beside fio read 1M',
        values: pairedRatios(randMixedS, randS),
        goal: 0.5,
        atLeast: true,
      },
    ],
  }
}

/** The first 4 KiB of a cold file in a fresh mount, against one 4 KiB GET's latency measured in the same round. */
export async function firstByteGroup(scn: Scenario, o: ReadOptions): Promise<GroupResult> {
  const getMs: number[] = []
  const mountMs: number[] = []
  const requests: number[] = []
  for (let round = 0; round < o.rounds; round++) {
    const samples = await oneGetMs(scn.blockUrl, scn.blobBytes)
    getMs.push(summarize(samples).median)
    const first = await rows.mountedFirstByte(scn, 'big.bin', o.backend)
    mountMs.push(first.ms)
    requests.push(first.requests)
    o.log(`${scn.profile} first byte round ${round + 1}: one GET ${getMs.at(-1)!.toFixed(1)} ms, cold file in the mount ${first.ms.toFixed(1)} ms (${first.requests} requests)`)
  }
  const ratios = pairedRatios(mountMs, getMs)
  return {
    sections: [
      {
        title: `${scn.profile}: time to the first 4 KiB of a cold file (target: <= 2 x one GET)`,
        body: table(
          ['what', 'ms', 'of one GET'],
          [
            ['one 4 KiB GET, libcurl, kept-alive connection (median of 5 per round)', formatValue(getMs, 1), ''],
            ['open() + read(4 KiB) of big.bin in a fresh mount, page cache dropped', formatValue(mountMs, 1), formatRatio(ratios)],
            ['  requests to storage on the way (directory, inode table, data)', formatValue(requests, 0), ''],
          ],
        ),
      },
    ],
    targets: [{ target: '2. first 4 KiB of a cold file / one GET', profile: scn.profile, measured: 'open+read 4 KiB / one 4 KiB GET', values: ratios, goal: 2, atLeast: false }],
  }
}
