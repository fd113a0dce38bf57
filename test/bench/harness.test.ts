// The bench is run by hand, so its measuring tools are checked here, cheaply, to keep it working.
import test from 'ava'
import { writeFile, readFile } from 'node:fs/promises'
import path from 'node:path'
import {
  interleave,
  summarize,
  pairedRatios,
  formatRatio,
  formatValue,
  table,
  parseFio,
  runFio,
  parseProcStatCpu,
  processCpuSeconds,
  parseVmHwmMiB,
  peakRssMiB,
  rssMiB,
  ddRead,
  ensureTools,
  mbps,
  iosWithin,
} from '../../bench/harness.js'
import { tempDir } from '../helpers/temp.js'

test('contenders run interleaved, one each per round, and ratios are taken within a round', async (t) => {
  const order: string[] = []
  let a = 0
  let b = 0
  const s = await interleave(3, [
    {
      name: 'A',
      run: async () => {
        order.push('A')
        return 10 * ++a
      },
    },
    {
      name: 'B',
      run: async () => {
        order.push('B')
        return 5 * ++b
      },
    },
  ])
  t.deepEqual(order, ['A', 'B', 'A', 'B', 'A', 'B'])
  t.deepEqual(s.get('A'), [10, 20, 30])
  t.deepEqual(pairedRatios(s.get('B')!, s.get('A')!), [0.5, 0.5, 0.5])
  t.is(formatRatio(pairedRatios([1, 3, 2], [2, 4, 4])), '0.50 (0.50-0.75)')
  t.is(formatRatio([]), '-')
  t.is(formatValue([7]), '7')
})

test('summaries: median of odd and even counts, min and max', (t) => {
  t.deepEqual(summarize([3, 1, 2]), { median: 2, min: 1, max: 3, n: 3 })
  t.deepEqual(summarize([4, 1, 3, 2]), { median: 2.5, min: 1, max: 4, n: 4 })
  t.true(Number.isNaN(summarize([]).median))
  t.is(mbps(10e6, 1000), 10)
  const text = table(
    ['what', 'MB/s'],
    [
      ['raw', '300'],
      ['mounted', '2'],
    ],
  )
  t.is(text.split('\n')[0], 'what     MB/s')
  t.is(text.split('\n')[3], 'mounted     2')
})

test('/proc parsing: CPU seconds even with spaces and parentheses in the command name, and peak RSS', async (t) => {
  const fields = Array.from({ length: 50 }, (_, i) => String(i + 3))
  fields[11] = '250' // utime (field 14)
  fields[12] = '150' // stime (field 15)
  t.is(parseProcStatCpu(`1234 (node (worker) x) ${fields.join(' ')}`), 4)
  t.true((await processCpuSeconds(process.pid)) > 0)
  t.is(parseVmHwmMiB('Name:\tnode\nVmHWM:\t  204800 kB\nVmRSS:\t1 kB\n'), 200)
  const now = await rssMiB(process.pid)
  t.true(now > 10)
  t.true((await peakRssMiB(process.pid)) >= now, 'the high-water mark read later is at least the resident set read before')
  t.throws(() => parseVmHwmMiB('Name: x\n'))
})

test('fio runs jobs as separate groups and its JSON is summed per group; dd times a read', async (t) => {
  await ensureTools(['fio', 'dd'])
  const tmp = await tempDir('encfs-bench-test-')
  try {
    const file = path.join(tmp.dir, 'f.bin')
    await writeFile(file, Buffer.alloc(4 * 1024 * 1024, 1))
    const log = path.join(tmp.dir, 'rand')
    const [seq, rand] = await runFio([
      { name: 'seq', file, rw: 'read', bs: '1M', direct: false },
      { name: 'rand', file, rw: 'randread', bs: '4k', numjobs: 2, direct: false, seconds: 1, iopsLog: log },
    ])
    t.is(seq!.name, 'seq')
    t.is(rand!.name, 'rand')
    t.true(seq!.ioBytes >= 4 * 1024 * 1024 && seq!.bw > 0)
    t.true(rand!.iops > 0)
    t.is(seq!.ioBytes, 4 * 1024 * 1024, 'one pass without seconds')
    const all = await iosWithin(log, 10_000)
    t.is(all, rand!.ioBytes / 4096, 'every random I/O is in the log')
    t.true((await iosWithin(log, 0)) < all)
    t.true((await ddRead(file, { bs: '64k' })) > 0)
    await t.throwsAsync(ddRead(path.join(tmp.dir, 'missing')), { message: /dd .* failed/ })
    // Notes fio prints before its JSON are skipped.
    const doc = JSON.stringify({
      jobs: [
        { jobname: 'a', groupid: 0, read: { io_bytes: 10, iops: 1, bw_bytes: 5, runtime: 1000 } },
        { jobname: 'a', groupid: 0, read: { io_bytes: 30, iops: 2, bw_bytes: 5, runtime: 1200 } },
      ],
    })
    t.deepEqual(parseFio(`note: both iodepth >= 1 and synchronous I/O engine\n${doc}`), [{ name: 'a', ioBytes: 40, iops: 3, bw: 10, runtimeMs: 1200 }])
    t.throws(() => parseFio('no json'), { message: /no JSON/ })
    t.truthy(await readFile(file))
  } finally {
    await tmp.cleanup()
  }
})
