// remotefs serving the API next to a mount: readiness, detail, and both making progress under load.
import test from 'ava'
import { spawn } from 'node:child_process'
import { writeFile } from 'node:fs/promises'
import { randomBytes } from 'node:crypto'
import path from 'node:path'
import { E2eFixture, autoUnlock, freePort, stopSidecar, leftovers, type TestImage } from '../helpers/e2e.js'
import type { SkrStack } from '../helpers/skr-stack.js'

const e2e = new E2eFixture(test)
let s: SkrStack
let img: TestImage
let ctx: string

test.before(async () => {
  s = await e2e.skrStack()
  img = await e2e.image({ fsSizeMiB: 48, files: { 'big.bin': randomBytes(32 * 1024 * 1024) } })
  ctx = await e2e.tempDir('encfs-ctx-')
})

test.serial('the API reports the mount, and attest requests and FUSE reads both make progress together', async (t) => {
  const caFile = path.join(s.dir, 'ca.pem')
  await writeFile(caFile, s.ca.join(''))
  const { sasUrl } = await e2e.upload(img.image, { kind: 'block' })
  const ws = await e2e.workspace()
  const mp = path.join(ws.parent, 'data')
  const port = await freePort()
  const sidecar = await e2e.mount([{ mount_point: mp, azure_url: sasUrl, raw_key: img.key.toString('hex') }], {
    args: ['--allow-raw-key', '-port', String(port), '--attestation', 'simulated', '--simulated-state', `${s.dir}/snp`],
    env: {
      NODE_EXTRA_CA_CERTS: caFile,
      UVM_SECURITY_CONTEXT_DIR: ctx,
      UVM_SECURITY_POLICY: s.policyBase64,
      UVM_REFERENCE_INFO: s.uvm.referenceInfo,
      UVM_HOST_AMD_CERTIFICATE: Buffer.from(JSON.stringify(s.uvm.hostAmdCertificate)).toString('base64'),
    },
  })
  const base = `http://127.0.0.1:${port}`
  const st = await fetch(`${base}/status`)
  t.is(st.status, 200)
  const detail = (await st.json()) as { ready: boolean; filesystems: { mountPoint: string; state: string; unlock: string }[] }
  t.true(detail.ready)
  t.like(detail.filesystems[0], { mountPoint: mp, state: 'mounted', unlock: (await autoUnlock()).mode })

  // A reader in another process, dropping the page cache each round so that every pass goes through FUSE.
  const reader = spawn('bash', ['-c', `while true; do echo 1 > /proc/sys/vm/drop_caches; cat '${path.join(mp, 'big.bin')}' > /dev/null && echo pass; done`], {
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  let passes = 0
  reader.stdout.on('data', (d: Buffer) => {
    passes += d
      .toString()
      .split('\n')
      .filter((l) => l === 'pass').length
  })
  const until = Date.now() + 8000
  let answered = 0
  const latencies: number[] = []
  while (Date.now() < until) {
    const started = Date.now()
    const res = await fetch(`${base}/attest/maa`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ maa_endpoint: s.maa.endpoint, runtime_data: Buffer.from('{"n":1}').toString('base64') }),
    })
    t.is(res.status, 200, await res.clone().text())
    latencies.push(Date.now() - started)
    answered++
  }
  reader.kill()
  // What the mount holds in memory, per filesystem (its block cache against its budget), and the process's RSS.
  const after = (await (await fetch(`${base}/status`)).json()) as {
    filesystems: { memory?: { budgetBytes: number; cacheBytes: number; peakCacheBytes: number; cachedRanges: number; dirtyRanges: number } }[]
    memory?: { rssBytes: number }
  }
  const mem = after.filesystems[0]!.memory
  t.truthy(mem, '/status reports the memory of each mounted filesystem')
  t.is(mem!.budgetBytes, 128 * 1024 * 1024, 'the default cache.memory_mib')
  t.true(mem!.peakCacheBytes >= 32 * 1024 * 1024 && mem!.peakCacheBytes <= mem!.budgetBytes, `peak ${mem!.peakCacheBytes}`)
  t.true(mem!.cacheBytes > 0 && mem!.cacheBytes <= mem!.budgetBytes && mem!.cachedRanges > 0)
  t.is(mem!.dirtyRanges, 0)
  t.true((after.memory?.rssBytes ?? 0) > mem!.cacheBytes, 'the process RSS, the cache included')
  t.log(`${passes} full reads of 32 MiB and ${answered} MAA attestations in 8 s; slowest attestation ${Math.max(...latencies)} ms`)
  t.true(passes >= 2, `FUSE reads kept going (${passes} passes)`)
  t.true(answered >= 5, `the API kept answering (${answered} attestations)`)
  t.is(await stopSidecar(sidecar), 0)
  t.deepEqual(await leftovers(sidecar.runtimeDir, [path.join(ws.parent, '.filesystem-0')]), [])
})
