import { buildScenario } from '/work/wt/p11/dist/bench/scenario.js'
import { inProcess } from '/work/wt/p11/dist/bench/rows.js'
import * as fs from 'node:fs'
const flt = () => Number(fs.readFileSync(`/proc/self/stat`,'utf8').split(') ')[1].split(' ')[7])
const scn = await buildScenario({ bigMiB: 256, randMiB: 8, writeMiB: 8 }, () => {})
try {
  for (let i = 0; i < 3; i++) for (const h of ['native']) {
    const f0 = flt()
    const r = await inProcess(scn.blockUrl, scn.image.key, 256*1024*1024, h)
    console.log(`in-process ${h}: ${r.mbps.toFixed(0)} MB/s, ${r.cpuPerGB.toFixed(2)} s/GB, faults ${flt()-f0}`)
  }
} finally { await scn.cleanup() }
