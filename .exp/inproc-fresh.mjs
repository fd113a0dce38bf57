import { buildScenario } from '/work/wt/p11/dist/bench/scenario.js'
import { inProcess } from '/work/wt/p11/dist/bench/rows.js'
const scn = await buildScenario({ bigMiB: 256, randMiB: 8, writeMiB: 8 }, () => {})
try {
  for (let i = 0; i < 2; i++) {
    globalThis.__fresh = []
    const r = await inProcess(scn.blockUrl, scn.image.key, 256*1024*1024, 'native')
    const f = globalThis.__fresh
    console.log(`${r.mbps.toFixed(0)} MB/s fresh allocations: ${f.length}, ${(f.reduce((a,b)=>a+b,0)/1048576).toFixed(0)} MiB; sizes KiB: ${f.map(x=>x/1024).join(' ')}`)
  }
} finally { await scn.cleanup() }
