// The data-path bench: every row of issue #11 measured side by side in one run, contenders
// interleaved round by round (A B C A B C ...), each ratio taken within a round and printed with
// its spread across rounds. Needs root (FUSE, loop, dropping the page cache), fio and rclone.
//
//   npm run bench                 full run, about 12 minutes on 2 cores
//   npm run bench -- --quick      small sizes, 2 rounds: a smoke test in about 4 minutes
//
// See docs/data-path.md for what the rows mean and what they showed.
import yargs from 'yargs'
import os from 'node:os'
import { MiB, ensureTools, runBench, formatRatio, formatValue, interleave, pairedRatios, summarize, table, type Contender } from './harness.js'
import { buildScenario } from './scenario.js'
import * as rows from './rows.js'
import { availableFuseBackends } from '../src/fuse/backend.js'
import { DEFAULT_MEMORY_BYTES } from '../src/cache/block-cache.js'
import type { BlobHttpClient } from '../src/storage/blob-http.js'

const args = yargs(process.argv.slice(2))
  .option('quick', { type: 'boolean', default: false, describe: 'small sizes and 2 rounds (smoke test)' })
  .option('rounds', { type: 'number', describe: 'rounds of every group (default 4, quick 2)' })
  .option('seconds', { type: 'number', describe: 'length of each timed fio / random run (default 6, quick 2)' })
  .option('big-mib', { type: 'number', describe: 'sequential file size (default 256, quick 160; larger than the 128 MiB cache, so a second pass is cold too)' })
  .option('rand-mib', { type: 'number', describe: 'random file size (default 256, quick 64)' })
  .option('write-mib', { type: 'number', describe: 'read-write row size (default 256, quick 32)' })
  .option('groups', { type: 'string', default: 'seq,random,mixed,write,http', describe: 'comma-separated groups to run' })
  .option('mounted-node-http', {
    type: 'boolean',
    default: true,
    describe: 'also measure the mounted sequential read with --http node (the Node.js client), beside the default native one',
  })
  .option('loop-buffered', { type: 'boolean', default: false, describe: 'also measure the libfuse3 mounted rows with the loop device in buffered mode (the libfuse2 default)' })
  .strict()
  .parseSync()

type RawKind = 'sdk' | 'get' | 'curl'
const rawName = (kind: RawKind, bs: number, c: number) => `raw ${kind === 'sdk' ? 'downloadToBuffer' : kind === 'get' ? 'RangedGet' : 'libcurl (native fetcher)'} ${bs} MiB x ${c}`

const quick = args.quick
const rounds = args.rounds ?? (quick ? 2 : 4)
const seconds = args.seconds ?? (quick ? 2 : 6)
const sizes = { bigMiB: args['big-mib'] ?? (quick ? 160 : 256), randMiB: args['rand-mib'] ?? (quick ? 64 : 256), writeMiB: args['write-mib'] ?? (quick ? 32 : 256) }
const groups = new Set(args.groups.split(','))
const log = (s: string) => process.stderr.write(`bench: ${s}\n`)
const out = (s = '') => process.stdout.write(`${s}\n`)

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('the bench mounts FUSE and loop devices and drops the page cache: run it as root')
  await ensureTools(['fio', 'rclone', 'fusermount', 'dd'], log)
  const backends = await availableFuseBackends()
  log(
    `FUSE backends: ${backends.join(', ')}; ${rounds} rounds; ${os.cpus().length} CPUs; load ${os
      .loadavg()
      .map((l) => l.toFixed(1))
      .join(' ')}`,
  )
  const began = performance.now()
  const scn = await buildScenario(sizes, log)
  const bigBytes = sizes.bigMiB * MiB
  const buf = Buffer.alloc(Math.max(bigBytes, sizes.writeMiB * MiB))
  const rawRun = (kind: RawKind, bs: number, c: number) =>
    kind === 'sdk'
      ? rows.rawDownload(scn.blockUrl, bigBytes, bs * MiB, c, buf)
      : kind === 'get'
        ? rows.pipelineRanges(scn.blockUrl, bigBytes, bs * MiB, c, buf)
        : rows.nativeRanges(scn.blockUrl, bigBytes, bs * MiB, c, buf)
  const report: string[] = []
  const section = (title: string, body: string) => {
    report.push(`\n## ${title}\n\n${body}`)
    out(`\n## ${title}\n\n${body}`)
  }
  try {
    out(
      `# encfs data-path bench  (${quick ? 'quick' : 'full'}: ${rounds} rounds, blob ${(scn.blobBytes / MiB).toFixed(0)} MiB, big.bin ${sizes.bigMiB} MiB, rand.bin ${sizes.randMiB} MiB, timed runs ${seconds} s)`,
    )
    out('values: median (min-max) over rounds; ratios are taken within each round, then summarised the same way')

    // Which parallel download is best here: its setting is the reference of every streaming row.
    // A first download warms Azurite and the JIT; then each setting is tried, interleaved. The
    // issue's reference is the best Node.js client (the SDK's downloadToBuffer or RangedGet); the
    // libcurl fetcher is measured the same way, and rows are also divided by the best of all.
    const configs: [RawKind, number, number][] = quick
      ? [
          ['sdk', 8, 8],
          ['sdk', 16, 8],
          ['get', 8, 8],
          ['curl', 8, 8],
          ['curl', 16, 8],
        ]
      : [
          ['sdk', 4, 4],
          ['sdk', 8, 4],
          ['sdk', 8, 8],
          ['sdk', 16, 4],
          ['sdk', 16, 8],
          ['get', 8, 8],
          ['get', 16, 8],
          ['curl', 8, 8],
          ['curl', 16, 4],
          ['curl', 16, 8],
        ]
    await rows.rawDownload(scn.blockUrl, bigBytes, 8 * MiB, 8, buf)
    await rows.nativeRanges(scn.blockUrl, bigBytes, 8 * MiB, 8, buf)
    const cal = await interleave(
      quick ? 1 : 2,
      configs.map(([k, bs, c]) => ({ name: rawName(k, bs, c), run: () => rawRun(k, bs, c) })),
      (n, r, v) => log(`calibration ${r + 1}: ${n}: ${v.toFixed(0)} MB/s`),
    )
    const calibration = [...cal.entries()].map(([n, v]) => [n, formatValue(v)])
    const bestOf = (kinds: RawKind[]) => {
      let best = { k: kinds[0]!, bs: 8, c: 8, mbps: 0 }
      configs.forEach(([k, bs, c], i) => {
        const m = summarize([...cal.values()][i]!).median
        if (kinds.includes(k) && m > best.mbps) best = { k, bs, c, mbps: m }
      })
      return best
    }
    const bestNode = bestOf(['sdk', 'get'])
    const bestCurl = bestOf(['curl'])
    section('raw parallel download settings (the best Node.js median is the reference below; libcurl is the native fetcher alone)', table(['setting', 'MB/s'], calibration))
    const ref = rawName(bestNode.k, bestNode.bs, bestNode.c)
    const raw = () => rawRun(bestNode.k, bestNode.bs, bestNode.c)
    const refCurl = rawName(bestCurl.k, bestCurl.bs, bestCurl.c)

    const seqNotes = new Map<string, rows.MountedSeq[]>()
    const inProcCpu: Record<BlobHttpClient, number[]> = { native: [], node: [] }
    if (groups.has('seq')) {
      const inProc = (http: BlobHttpClient): Contender => ({
        name: `in-process: BlobSource+BlockCache+LuksVolume (${http === 'native' ? 'libcurl' : 'Node.js'} HTTP)`,
        run: async () => {
          const r = await rows.inProcess(scn.blockUrl, scn.image.key, bigBytes, http)
          inProcCpu[http].push(r.cpuPerGB)
          return r.mbps
        },
      })
      const mounted = (b: string, http?: BlobHttpClient): Contender => ({
        name: `mounted: dd of big.bin in ext4 (${b}${http ? `, ${http === 'native' ? 'libcurl' : 'Node.js'} HTTP` : ''})`,
        run: async () => {
          const r = await rows.mountedSequential(scn, b, false, http)
          const key = http ? `${b}, http ${http}` : b
          seqNotes.set(key, [...(seqNotes.get(key) ?? []), r])
          return r.mbps
        },
      })
      const contenders: Contender[] = [
        { name: ref, run: raw },
        { name: refCurl, run: () => rawRun(bestCurl.k, bestCurl.bs, bestCurl.c) },
        inProc('native'),
        inProc('node'),
        ...backends.map((b): Contender => ({ name: `FUSE data file, dd bs=1M (${b})`, run: () => rows.fuseFileRead(scn, b) })),
        ...backends.map((b) => mounted(b)),
        ...(args['mounted-node-http'] ? [mounted(backends[0]!, 'node')] : []),
        ...(args['loop-buffered']
          ? [{ name: `mounted: dd of big.bin in ext4 (${backends[0]!}, loop buffered)`, run: async () => (await rows.mountedSequential(scn, backends[0]!, true)).mbps }]
          : []),
        { name: 'rclone mount of the blob (peer)', run: () => rows.rcloneRead(scn) },
        { name: 'Go azmount: 512 KiB ranges, serial', run: () => rows.goSerial(scn.blockUrl, Math.min(bigBytes, 64 * MiB), buf) },
      ]
      const s = await interleave(rounds, contenders, (n, r, v) => log(`seq round ${r + 1}: ${n}: ${v.toFixed(0)} MB/s`))
      const refS = s.get(ref)!
      const curlS = s.get(refCurl)!
      const bestAny = refS.map((v, i) => Math.max(v, curlS[i] ?? 0))
      const rclone = s.get('rclone mount of the blob (peer)')!
      section(
        `sequential read, cold (reference: ${ref}; "any client" is the better of it and ${refCurl}, round by round)`,
        table(
          ['what', 'MB/s', 'ratio to raw (Node.js)', 'ratio to raw (any client)', 'ratio to rclone'],
          [...s.entries()].map(([n, v]) => [n, formatValue(v), formatRatio(pairedRatios(v, refS)), formatRatio(pairedRatios(v, bestAny)), formatRatio(pairedRatios(v, rclone))]),
        ),
      )

      const budget = DEFAULT_MEMORY_BYTES / MiB
      const resRows: string[][] = []
      for (const [b, notes] of seqNotes) {
        // Each mount against the in-process pipeline on the same client, in the same round.
        const inProcSame = b.endsWith('http node') ? inProcCpu.node : inProcCpu.native
        const cpuRatio = notes.map((n, i) => n.cpuPerGB / (inProcSame[i] ?? Number.NaN))
        resRows.push([`peak RSS, MiB (${b}); target <= ${budget + 64}`, formatValue(notes.map((n) => n.peakRssMiB))])
        resRows.push([`  RSS once mounted, before reading (Node.js, SDK, modules)`, formatValue(notes.map((n) => n.idleRssMiB))])
        resRows.push([`  peak - mounted: what reading added; target <= ${budget + 64}`, formatValue(notes.map((n) => n.peakRssMiB - n.idleRssMiB))])
        resRows.push([
          `CPU s per GB served (${b})`,
          formatValue(
            notes.map((n) => n.cpuPerGB),
            2,
          ),
        ])
        resRows.push([`  / in-process CPU s per GB, same HTTP client (${formatValue(inProcSame, 2)}); target <= 1.3`, formatRatio(cpuRatio)])
        resRows.push([`start to mounted, ms, KDF excluded (${b}); target <= 1000`, formatValue(notes.map((n) => n.startMs - n.kdfMs))])
        resRows.push([`  KDF (pbkdf2 keyslot), ms`, formatValue(notes.map((n) => n.kdfMs))])
      }
      section(`remotefs resources during the mounted sequential read (cache budget ${budget} MiB)`, table(['what', 'value'], resRows))
    }

    if (groups.has('random') || groups.has('mixed')) {
      const def = backends[0]!
      const amp: number[] = []
      const contenders: Contender[] = [
        { name: 'raw 4 KiB ranged GETs x 4', run: () => rows.rawRandom4k(scn.blockUrl, scn.blobBytes, seconds, 4, 'pipeline') },
        { name: 'raw 4 KiB BlobClient.download() x 4', run: () => rows.rawRandom4k(scn.blockUrl, scn.blobBytes, seconds, 4, 'sdk') },
        { name: 'raw 4 KiB libcurl GETs x 4', run: () => rows.rawRandom4k(scn.blockUrl, scn.blobBytes, seconds, 4, 'native') },
        {
          name: `mounted: fio randread 4k psync 4 jobs (${def})`,
          run: async () => {
            const r = await rows.mountedRandom(scn, seconds, def)
            amp.push(r.amplification)
            return r.iops
          },
        },
        ...(args['loop-buffered']
          ? [{ name: `mounted: fio randread 4k psync 4 jobs (${def}, loop buffered)`, run: async () => (await rows.mountedRandom(scn, seconds, def, true)).iops }]
          : []),
      ]
      const mixedSeq: number[] = []
      const mixedSeqBuffered: number[] = []
      if (groups.has('mixed')) {
        contenders.push({ name: 'raw 4 KiB ranged GETs x 4 while a raw download runs', run: () => rows.rawMixed(scn, Math.min(seconds, 2), raw) })
        contenders.push({ name: `mounted: fio read 1M, one pass, alone (${def})`, run: () => rows.mountedSeqFio(scn, def) })
        contenders.push({
          name: `mounted: fio randread 4k x 4 while the fio read 1M pass runs (${def})`,
          run: async () => {
            const r = await rows.mountedMixed(scn, seconds, def)
            mixedSeq.push(r.seqMBps)
            return r.randIops
          },
        })
        if (args['loop-buffered']) {
          contenders.push({ name: `mounted: fio read 1M, one pass, alone (${def}, loop buffered)`, run: () => rows.mountedSeqFio(scn, def, true) })
          contenders.push({
            name: `mounted: fio randread 4k x 4 while the fio read 1M pass runs (${def}, loop buffered)`,
            run: async () => {
              const r = await rows.mountedMixed(scn, seconds, def, true)
              mixedSeqBuffered.push(r.seqMBps)
              return r.randIops
            },
          })
        }
      }
      const s = await interleave(rounds, contenders, (n, r, v) => log(`random round ${r + 1}: ${n}: ${v.toFixed(0)}`))
      const rawS = s.get('raw 4 KiB ranged GETs x 4')!
      const randS = s.get(`mounted: fio randread 4k psync 4 jobs (${def})`)!
      const sdkS = s.get('raw 4 KiB BlobClient.download() x 4')!
      const curl4kS = s.get('raw 4 KiB libcurl GETs x 4')!
      const best4k = rawS.map((v, i) => Math.max(v, curl4kS[i] ?? 0))
      const bufferedS = s.get(`mounted: fio randread 4k psync 4 jobs (${def}, loop buffered)`)
      const row = (n: string, v: number[]) => [n, formatValue(v), formatRatio(pairedRatios(v, rawS)), formatRatio(pairedRatios(v, best4k))]
      const body: string[][] = [
        row('raw 4 KiB ranged GETs x 4 (RangedGet), IOPS', rawS),
        row('raw 4 KiB BlobClient.download() x 4, IOPS', sdkS),
        row('raw 4 KiB libcurl GETs x 4 (native fetcher), IOPS', curl4kS),
        row(`mounted fio randread 4k x 4, IOPS (${def})`, randS),
        ['  read amplification (bytes fetched / bytes read); target <= 2', formatValue(amp, 2), '', ''],
      ]
      if (bufferedS) body.push(row(`mounted fio randread 4k x 4, IOPS (${def}, loop buffered)`, bufferedS))
      section('random 4 KiB reads (target: mounted >= 0.7 x raw at the same concurrency)', table(['what', 'value', 'ratio to raw (RangedGet)', 'ratio to raw (any client)'], body))
      if (groups.has('mixed')) {
        const seqAlone = s.get(`mounted: fio read 1M, one pass, alone (${def})`)!
        const randMixed = s.get(`mounted: fio randread 4k x 4 while the fio read 1M pass runs (${def})`)!
        const rawMixed = s.get('raw 4 KiB ranged GETs x 4 while a raw download runs')!
        const mixedRows = [
          ['storage alone: raw random GETs beside a raw download, IOPS', formatValue(rawS), formatValue(rawMixed), formatRatio(pairedRatios(rawMixed, rawS))],
          ['sequential fio read 1M, one pass, MB/s', formatValue(seqAlone), formatValue(mixedSeq), formatRatio(pairedRatios(mixedSeq, seqAlone))],
          ['random fio randread 4k x 4, IOPS', formatValue(randS), formatValue(randMixed), formatRatio(pairedRatios(randMixed, randS))],
        ]
        const seqAloneBuffered = s.get(`mounted: fio read 1M, one pass, alone (${def}, loop buffered)`)
        const randMixedBuffered = s.get(`mounted: fio randread 4k x 4 while the fio read 1M pass runs (${def}, loop buffered)`)
        if (seqAloneBuffered && randMixedBuffered && bufferedS) {
          mixedRows.push([
            'sequential, loop buffered, MB/s',
            formatValue(seqAloneBuffered),
            formatValue(mixedSeqBuffered),
            formatRatio(pairedRatios(mixedSeqBuffered, seqAloneBuffered)),
          ])
          mixedRows.push(['random, loop buffered, IOPS', formatValue(bufferedS), formatValue(randMixedBuffered), formatRatio(pairedRatios(randMixedBuffered, bufferedS))])
        }
        section('mixed: a sequential and a random reader at once (target: each keeps >= 0.5 of its solo rate)', table(['what', 'alone', 'together', 'kept'], mixedRows))
      }
    }

    if (groups.has('write')) {
      const data = buf.subarray(0, sizes.writeMiB * MiB)
      const { readFile } = await import('node:fs/promises')
      ;(await readFile(scn.writeSource)).copy(data)
      const def = backends[0]!
      const rawSdk = 'raw Put Page upload 4 MiB x 8 (SDK)'
      const rawCurl = 'raw Put Page upload 4 MiB x 8 (libcurl)'
      const contenders: Contender[] = [
        { name: rawSdk, run: () => rows.rawPutPages(scn, data, 'sdk') },
        { name: rawCurl, run: () => rows.rawPutPages(scn, data, 'curl') },
        ...backends.map((b): Contender => ({ name: `mounted read-write: dd bs=1M conv=fsync (${b})`, run: () => rows.mountedWrite(scn, b) })),
        // The fallback where libcurl does not load: Put Page by the SDK, write-backs copied into snapshots.
        { name: `mounted read-write: dd bs=1M conv=fsync (${def}, --http node)`, run: () => rows.mountedWrite(scn, def, 'node') },
      ]
      const s = await interleave(Math.max(2, Math.ceil(rounds / 2)), contenders, (n, r, v) => log(`write round ${r + 1}: ${n}: ${v.toFixed(0)} MB/s`))
      const rawS = s.get(rawSdk)!
      const bestRaw = rawS.map((v, i) => Math.max(v, s.get(rawCurl)![i] ?? 0))
      section(
        `read-write: ${sizes.writeMiB} MiB written and fsynced on a page blob (target >= 0.7 x raw; default backend ${def})`,
        table(
          ['what', 'MB/s', 'ratio to raw (SDK)', 'to the best raw'],
          [...s.entries()].map(([n, v]) => [n, formatValue(v), formatRatio(pairedRatios(v, rawS)), formatRatio(pairedRatios(v, bestRaw))]),
        ),
      )
    }

    if (groups.has('http')) {
      const range = 8 * MiB
      const contenders: Contender[] = [
        { name: 'SDK downloadToBuffer 8 MiB x 8', run: () => rows.rawDownload(scn.blockUrl, bigBytes, range, 8, buf) },
        { name: 'SDK BlobClient.download() 8 MiB x 8, body copied', run: () => rows.sdkDownloadRanges(scn.blockUrl, bigBytes, range, 8, buf) },
        { name: 'RangedGet (core-rest-pipeline) 8 MiB x 8', run: () => rows.pipelineRanges(scn.blockUrl, bigBytes, range, 8, buf) },
      ]
      const s = await interleave(rounds, contenders, (n, r, v) => log(`http round ${r + 1}: ${n}: ${v.toFixed(0)} MB/s`))
      const refS = s.values().next().value!
      section(
        'HTTP client: the SDK download path against a direct ranged GET',
        table(
          ['what', 'MB/s', 'ratio'],
          [...s.entries()].map(([n, v]) => [n, formatValue(v), formatRatio(pairedRatios(v, refS))]),
        ),
      )
    }
    out(
      `\nbench took ${((performance.now() - began) / 60000).toFixed(1)} min; load now ${os
        .loadavg()
        .map((l) => l.toFixed(1))
        .join(' ')}`,
    )
  } finally {
    await scn.cleanup()
  }
}

runBench(main)
