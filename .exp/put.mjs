import { startAzurite } from '/work/wt/p11/dist/src/demo/azurite.js'
import { loadCurlAddon } from '/work/wt/p11/dist/src/http/curl-addon.js'
import { BlobSASPermissions, StorageSharedKeyCredential, generateBlobSASQueryParameters } from '@azure/storage-blob'
import { randomBytes } from 'node:crypto'
import { execFileSync } from 'node:child_process'
import * as fs from 'node:fs'
const MiB = 1024*1024, size = 256*MiB
const az = await startAzurite()
const azPid = execFileSync('pgrep', ['-f', az.location]).toString().trim().split('\n')[0]
const azCpu = () => { const f = fs.readFileSync(`/proc/${azPid}/stat`,'utf8').split(') ')[1].split(' '); return (Number(f[11])+Number(f[12]))/100 }
const container = az.service.getContainerClient('writes'); await container.createIfNotExists()
const data = randomBytes(size)
const addon = loadCurlAddon()
const pending = new Map()
const f = new addon.Fetcher({ maxHostConnections: 16 }, (id, code, status, bytes, msg, headers) => { const p = pending.get(id); pending.delete(id); (code === 0 && status === 201) ? p.resolve() : p.reject(new Error(`${code} ${status} ${msg} ${headers}`)) })
const cred = new StorageSharedKeyCredential(az.accountName, az.accountKey)
async function run(name, put) {
  const c = container.getPageBlobClient(`b-${Math.random()}`); await c.create(size)
  const sas = generateBlobSASQueryParameters({ containerName: 'writes', blobName: c.name, permissions: BlobSASPermissions.parse('rw'), expiresOn: new Date(Date.now()+3600e3) }, cred).toString()
  const url = `${c.url}?${sas}`
  let next = 0; const c0 = process.cpuUsage(), a0 = azCpu(), t0 = performance.now()
  await Promise.all(Array.from({length: 8}, async () => { while (next < size) { const off = next; next += 4*MiB; await put(c, url, off, data.subarray(off, off+4*MiB)) } }))
  const ms = performance.now()-t0, cu = process.cpuUsage(c0), a = azCpu()
  console.log(`${name}: ${(size/1e6/(ms/1000)).toFixed(0)} MB/s, client ${((cu.user+cu.system)/1e6/(size/1e9)).toFixed(2)} s/GB, azurite ${((a-a0)/(size/1e9)).toFixed(2)} s/GB`)
  await c.delete()
}
const sdk = (c, url, off, buf) => c.uploadPages(buf, off, buf.length)
const native = (c, url, off, buf) => new Promise((resolve, reject) => { const id = f.put(url + '&comp=page', ['x-ms-version: 2026-04-06', 'x-ms-page-write: update', `x-ms-range: bytes=${off}-${off+buf.length-1}`], buf, 120000); pending.set(id, { resolve, reject }) })
if (process.env.DEBUG) { const c = container.getPageBlobClient('dbg'); await c.create(size); const sas = generateBlobSASQueryParameters({ containerName: 'writes', blobName: 'dbg', permissions: BlobSASPermissions.parse('rw'), expiresOn: new Date(Date.now()+3600e3) }, cred).toString(); fs.writeFileSync('/tmp/p11exp/x.bin', data.subarray(0, 4*MiB)); console.log(execFileSync('sh', ['-c', `curl -sv -X PUT -T /tmp/p11exp/x.bin -H 'x-ms-version: 2026-04-06' -H 'x-ms-page-write: update' -H 'x-ms-range: bytes=0-4194303' '${c.url}?${sas}' 2>&1 | grep -v '^[{}*] ' | head -40`]).toString()); process.exit(0) }
for (let i = 0; i < 3; i++) { await run('SDK uploadPages 4 MiB x 8', sdk); await run('libcurl PUT 4 MiB x 8', native) }
f.close(); await az.stop()
