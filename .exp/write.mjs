import { buildScenario } from '/work/wt/p11/dist/bench/scenario.js'
import { startRemotefs } from '/work/wt/p11/dist/bench/mounts.js'
import { rawPutPages } from '/work/wt/p11/dist/bench/rows.js'
import { MiB } from '/work/wt/p11/dist/bench/harness.js'
import { mkdir, rm, readFile } from 'node:fs/promises'
import { execFileSync, spawn } from 'node:child_process'
import * as fs from 'node:fs'
import path from 'node:path'
const W = Number(process.env.W ?? 256)
const scn = await buildScenario({ bigMiB: 8, randMiB: 8, writeMiB: W }, () => {})
const azPid = execFileSync('pgrep', ['-f', scn.az.location]).toString().trim().split('\n')[0]
const cpuOf = (pid) => { const f = fs.readFileSync(`/proc/${pid}/stat`,'utf8').split(') ')[1].split(' '); return [Number(f[11])/100, Number(f[12])/100] }
const data = await readFile(scn.writeSource)
try {
  for (let i = 0; i < Number(process.env.ROUNDS ?? 2); i++) {
    const a0 = cpuOf(azPid); const c0 = process.cpuUsage()
    const r = await rawPutPages(scn, data)
    const a1 = cpuOf(azPid); const c1 = process.cpuUsage(c0)
    console.log(`raw SDK Put Page: ${r.toFixed(0)} MB/s, client ${((c1.user+c1.system)/1e6/(W*MiB/1e9)).toFixed(2)} s/GB azurite ${((a1[0]+a1[1]-a0[0]-a0[1])/(W*MiB/1e9)).toFixed(2)} s/GB`)
    for (const h of (process.env.HTTP ?? 'native').split(',')) {
      const parent = path.join(scn.dir, `w${i}${h}`); await mkdir(parent)
      const run = await startRemotefs({ url: scn.pageUrl, key: scn.image.key, parent, name: 'fs', backend: 'libfuse3', readWrite: true, http: h })
      try {
        let perf
        if (process.env.PERF) { perf = spawn('perf', ['record', '-g', '-o', `/tmp/p11exp/perfw-${h}.data`, '-p', String(run.pid)], { stdio: 'ignore' }); await new Promise(r => setTimeout(r, 300)) }
        if (process.env.PROF_WHO) fs.writeFileSync('/tmp/p11exp/prof/start', '')
        const r0 = cpuOf(run.pid), q0 = cpuOf(azPid), t0 = performance.now()
        execFileSync('dd', [`if=${scn.writeSource}`, `of=${path.join(run.mountPoint, 'written.bin')}`, 'bs=1M', 'conv=fsync', 'status=none'])
        const ms = performance.now() - t0
        const r1 = cpuOf(run.pid), q1 = cpuOf(azPid)
        if (process.env.PROF_WHO) { fs.writeFileSync('/tmp/p11exp/prof/stop', ''); await new Promise(r => setTimeout(r, 500)) }
        if (perf) { perf.kill('SIGINT'); await new Promise(r => perf.on('exit', r)) }
        const g = W*MiB/1e9
        console.log(`mounted write (${h}): ${(W*MiB/1e6/(ms/1000)).toFixed(0)} MB/s, remotefs user ${((r1[0]-r0[0])/g).toFixed(2)} sys ${((r1[1]-r0[1])/g).toFixed(2)} s/GB, azurite ${((q1[0]+q1[1]-q0[0]-q0[1])/g).toFixed(2)} s/GB`)
        execFileSync('rm', ['-f', path.join(run.mountPoint, 'written.bin')]); execFileSync('sync', ['-f', run.mountPoint])
      } finally { const s = await run.stop().catch(e => console.log(String(e).slice(0,300))); console.log(JSON.stringify(s?.atEnd), JSON.stringify(s?.fuse)); await rm(parent, { recursive: true, force: true }) }
    }
  }
} finally { await scn.cleanup() }
