import { buildScenario } from '/work/wt/p11/dist/bench/scenario.js'
import { startRemotefs } from '/work/wt/p11/dist/bench/mounts.js'
import { dropCaches, ddRead, mbps, MiB } from '/work/wt/p11/dist/bench/harness.js'
import { mkdir, rm } from 'node:fs/promises'
import { execFileSync } from 'node:child_process'
import * as fs from 'node:fs'
import path from 'node:path'
const variants = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'))
const rounds = Number(process.env.ROUNDS ?? 4)
const scn = await buildScenario({ bigMiB: 256, randMiB: 8, writeMiB: 8 }, () => {})
const fltOf = (pid) => Number(fs.readFileSync(`/proc/${pid}/stat`,'utf8').split(') ')[1].split(' ')[7])
const cpuOf = (pid) => { const f = fs.readFileSync(`/proc/${pid}/stat`,'utf8').split(') ')[1].split(' '); return Number(f[11])/100 + Number(f[12])/100 }
const res = {}
try {
  for (let i = 0; i < rounds; i++) {
    for (const v of variants) {
      const parent = path.join(scn.dir, `v${i}${Math.random()}`); await mkdir(parent)
      const run = await startRemotefs({ url: scn.blockUrl, key: scn.image.key, parent, name: 'fs', backend: 'libfuse3', http: v.http ?? 'native', ...(v.cache ? { cache: v.cache } : {}) })
      try {
        if (v.setup) execFileSync('sh', ['-c', v.setup.replaceAll('RUNDIR', run.sidecar.runtimeDir)], { stdio: 'inherit' })
        await dropCaches([scn.az.location])
        const c0 = cpuOf(run.pid), f0 = fltOf(run.pid)
        const ms = v.data ? await ddRead(run.dataFile, { count: 256 }) : await ddRead(path.join(run.mountPoint, 'big.bin'), v.dd ?? {})
        const cpu = cpuOf(run.pid) - c0, flt = fltOf(run.pid) - f0
        const r = await run.stop()
        const x = { mbps: mbps(256*MiB, ms), cpu: cpu/(256*MiB/1e9), flt, fetched: ((r.atEnd?.bytesFetched ?? 0) - (run.atReady?.bytesFetched ?? 0))/1e6 }
        ;(res[v.name] ??= []).push(x)
        console.log(`round ${i+1} ${v.name}: ${x.mbps.toFixed(0)} MB/s, ${x.cpu.toFixed(2)} s/GB, fetched ${x.fetched.toFixed(0)} MB, fuse ${r.fuse?.reads} reads, ${x.flt} minor faults`)
      } finally { await rm(parent, { recursive: true, force: true }) }
    }
  }
} finally { await scn.cleanup() }
const med = (a) => { const s = [...a].sort((x,y)=>x-y); const m = s.length>>1; return s.length%2 ? s[m] : (s[m-1]+s[m])/2 }
const base = res[variants[0].name]
for (const v of variants) {
  const a = res[v.name]; const ratios = a.map((x, i) => x.mbps / base[i].mbps)
  console.log(`${v.name.padEnd(40)} ${med(a.map(x=>x.mbps)).toFixed(0)} MB/s (${Math.min(...a.map(x=>x.mbps)).toFixed(0)}-${Math.max(...a.map(x=>x.mbps)).toFixed(0)}) ratio ${med(ratios).toFixed(2)} (${Math.min(...ratios).toFixed(2)}-${Math.max(...ratios).toFixed(2)}) cpu ${med(a.map(x=>x.cpu)).toFixed(2)} s/GB fetched ${med(a.map(x=>x.fetched)).toFixed(0)} MB, faults ${med(a.map(x=>x.flt))}`)
}
