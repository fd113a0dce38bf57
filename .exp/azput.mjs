import { startAzurite, uploadFile } from '/work/wt/p11/dist/src/demo/azurite.js'
import { randomBytes } from 'node:crypto'
import { execFileSync } from 'node:child_process'
import * as fs from 'node:fs'
const MiB = 1024*1024, size = 256*MiB
const az = await startAzurite()
const azPid = execFileSync('pgrep', ['-f', az.location]).toString().trim().split('\n')[0]
const azCpu = () => { const f = fs.readFileSync(`/proc/${azPid}/stat`,'utf8').split(') ')[1].split(' '); return (Number(f[11])+Number(f[12]))/100 }
const container = az.service.getContainerClient('writes'); await container.createIfNotExists()
const data = randomBytes(size)
fs.writeFileSync('/tmp/p11exp/img.bin', randomBytes(330*MiB))
async function run(name, client, piece, lease) {
  let next = 0; const a0 = azCpu(), t0 = performance.now()
  await Promise.all(Array.from({length: 8}, async () => { while (next < size) { const off = next; next += piece; await client.uploadPages(data.subarray(off, off+piece), off, piece, lease ? { conditions: { leaseId: lease } } : {}) } }))
  const ms = performance.now()-t0, a = azCpu()
  console.log(`${name}: ${(size/1e6/(ms/1000)).toFixed(0)} MB/s, azurite ${((a-a0)/(size/1e9)).toFixed(2)} s/GB`)
}
for (let i = 0; i < 2; i++) {
  const fresh = () => { const c = container.getPageBlobClient(`b-${Math.random()}`); return c.create(330*MiB).then(() => c) }
  await run('fresh 4 MiB', await fresh(), 4*MiB)
  await run('fresh 2 MiB', await fresh(), 2*MiB)
  await run('fresh 1 MiB', await fresh(), 1*MiB)
  const { url } = await uploadFile(az, '/tmp/p11exp/img.bin', { kind: 'page', container: 'writes' })
  const existing = container.getPageBlobClient(url.split('/').pop())
  await run('existing image blob 4 MiB', existing, 4*MiB)
  const l = existing.getBlobLeaseClient(); await l.acquireLease(60)
  await run('existing image blob 4 MiB, leased', existing, 4*MiB, l.leaseId)
  await run('existing image blob 4 MiB again (rewrite)', existing, 4*MiB, l.leaseId)
  await l.releaseLease()
}
await az.stop(); fs.rmSync('/tmp/p11exp/img.bin')
