// SIGTERM ends remotefs within 15 s whatever storage and the key services do (README, "Stopping"):
// idle; with reads pending on a stalled blob server; with write-backs black-holed; with the key
// release hanging on a stalled vault; during start-up with the header prefetch stalled. (A key
// derivation running: test/e2e/remotefs-kdf.test.ts.) The hostile peer is the fault proxy in front
// of Azurite, or of the Key Vault emulator; every case ends with nothing left behind.
import test, { type ExecutionContext } from 'ava'
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import path from 'node:path'
import { BlobClient } from '@azure/storage-blob'
import { E2eFixture, leftovers, waitUntil, type Sidecar, type TestImage } from '../helpers/e2e.js'
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js'

const e2e = new E2eFixture(test)
/** The promise of the README: SIGTERM to exit, in every state. */
const STOP_BOUND_MS = 15_000
let img: TestImage
const big = randomBytes(8 * 1024 * 1024)

test.before(async () => {
  img = await e2e.image({ fsSizeMiB: 24, files: { 'big.bin': big, 'small.txt': 'small\n' } })
})

/** The image uploaded as `kind`, and a fault proxy in front of Azurite for it. */
async function behindProxy(kind: 'block' | 'page'): Promise<{ sasUrl: string; proxy: FaultProxy }> {
  const { sasUrl } = await e2e.upload(img.image, { kind })
  const proxy = await startFaultProxy({ port: Number(new URL(sasUrl).port) })
  e2e.defer(() => proxy.stop())
  return { sasUrl, proxy }
}

/** A child process as an application runs one; resolves with its exit code and stderr, never rejects. */
function app(script: string): { done: Promise<{ code: number | null; stderr: string; ms: number }> } {
  const started = Date.now()
  const child = spawn('sh', ['-c', script], { stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString()
  })
  e2e.defer(() => child.kill('SIGKILL'))
  return { done: new Promise((resolve) => child.on('exit', (code) => resolve({ code, stderr, ms: Date.now() - started }))) }
}

/**
 * SIGTERM, and the exit within the bound (the time is logged); past a minute the run is killed so
 * that the test fails instead of hanging. Resolves with the exit code.
 */
async function stopsInTime(t: ExecutionContext, sidecar: Sidecar): Promise<number | null> {
  const sent = Date.now()
  sidecar.child.kill('SIGTERM')
  const killer = setTimeout(() => sidecar.child.kill('SIGKILL'), 60_000)
  const code = await sidecar.exited
  clearTimeout(killer)
  const ms = Date.now() - sent
  t.log(`exit ${ms} ms after SIGTERM`)
  t.true(ms < STOP_BOUND_MS, `exited ${ms} ms after SIGTERM`)
  return code
}

/** A stop during start-up: exit 0, said as such, nothing left. */
async function stoppedDuringStartup(t: ExecutionContext, sidecar: Sidecar, parent: string): Promise<void> {
  t.is(await stopsInTime(t, sidecar), 0)
  t.regex(await sidecar.log(), /stopped during start-up/)
  await nothingLeft(t, sidecar, parent)
}

async function nothingLeft(t: ExecutionContext, sidecar: Sidecar, parent: string): Promise<void> {
  t.deepEqual(await leftovers(sidecar.runtimeDir, [path.join(parent, '.filesystem-0')]), [], 'no mounts or loop devices left')
}

test.serial('idle: SIGTERM ends remotefs within 15 s, exit 0', async (t) => {
  const { sasUrl } = await e2e.upload(img.image, { kind: 'block' })
  const ws = await e2e.workspace()
  const sidecar = await e2e.mount([{ mount_point: path.join(ws.parent, 'idle'), azure_url: sasUrl, raw_key: img.key.toString('hex') }], { args: ['--allow-raw-key'] })
  t.is(await stopsInTime(t, sidecar), 0)
  await nothingLeft(t, sidecar, ws.parent)
})

test.serial('reads pending on a stalled blob server: SIGTERM aborts them (the reader gets EIO) and remotefs exits 0 within 15 s', async (t) => {
  const { sasUrl, proxy } = await behindProxy('block')
  const ws = await e2e.workspace()
  const mp = path.join(ws.parent, 'reads')
  const sidecar = await e2e.mount([{ mount_point: mp, azure_url: proxy.via(sasUrl), raw_key: img.key.toString('hex') }], { args: ['--allow-raw-key'] })
  proxy.stall((req) => req.method === 'GET')
  const reader = app(`cat ${mp}/big.bin > /dev/null`)
  await waitUntil('a read to be held by the stalled server', async () => proxy.stalled.waiting > 0, { exited: sidecar.exited, timeoutMs: 30_000 })
  t.is(await stopsInTime(t, sidecar), 0)
  const r = await reader.done
  t.not(r.code, 0, 'the reader did not get data that never came')
  t.regex(r.stderr, /Input\/output error|Transport endpoint/)
  t.regex(await sidecar.log(), /stopping: unmounting all filesystems/)
  await nothingLeft(t, sidecar, ws.parent)
})

test.serial('write-backs black-holed (Put Page never answered): SIGTERM gives them a deadline, says exactly what was lost, releases the lease, exits within 15 s', async (t) => {
  const { sasUrl, proxy } = await behindProxy('page')
  const ws = await e2e.workspace()
  const mp = path.join(ws.parent, 'writes')
  const sidecar = await e2e.mount([{ mount_point: mp, azure_url: proxy.via(sasUrl), raw_key: img.key.toString('hex'), read_write: true }], { args: ['--allow-raw-key'] })
  proxy.stall((req) => req.method === 'PUT' && /[?&]comp=page/.test(req.url ?? ''))
  const writer = app(`dd if=/dev/urandom of=${mp}/new.bin bs=64k count=32 conv=fsync status=none`)
  await waitUntil('a Put Page to be held by the black hole', async () => proxy.stalled.waiting > 0, { exited: sidecar.exited, timeoutMs: 30_000 })
  t.is(await stopsInTime(t, sidecar), 1, 'written data that never reached storage is a failed stop')
  const log = await sidecar.log()
  t.regex(log, /"msg":"\d+ bytes in \d+ range\(s\) were not written to storage and are lost/)
  t.regex(log, /"code":"STORAGE_WRITE_DROPPED"/)
  t.regex(sidecar.output(), /were not written to storage and are lost.*\[STOP_FAILED\]/)
  t.not((await writer.done).code, 0, 'the fsync did not report success')
  await nothingLeft(t, sidecar, ws.parent)
  const props = await new BlobClient(sasUrl).getProperties()
  t.is(props.leaseState, 'available', 'the lease was released: the next writer need not wait for it to expire')
})

test.serial('a key release hanging on a stalled vault: SIGTERM during start-up ends remotefs within 15 s, exit 0', async (t) => {
  const s = await e2e.skrStack()
  const key = randomBytes(32)
  await s.importKey('stalled-key', key)
  const released = await e2e.image({ key, fsSizeMiB: 8, files: { 'a.txt': 'a\n' } })
  const { sasUrl } = await e2e.upload(released.image, { kind: 'block' })
  const vault = await startFaultProxy({ port: Number(s.akv.endpoint.split(':')[1]), tls: { pki: s.akv.pki, targetCa: s.akv.caPem } })
  e2e.defer(() => vault.stop())
  vault.stall()
  const caFile = s.caFile
  const ws = await e2e.workspace()
  const bearer = (await s.authority.issue(s.akv.audience, 'pod')).token
  const sidecar = await e2e.sidecar(
    [
      {
        mount_point: path.join(ws.parent, 'k'),
        azure_url: sasUrl,
        key: { kid: 'stalled-key', authority: { endpoint: s.maa.endpoint }, akv: { endpoint: vault.endpoint, bearer_token: bearer } },
      },
    ],
    {
      args: ['--attestation', 'simulated', '--simulated-state', `${s.dir}/snp`],
      env: {
        NODE_EXTRA_CA_CERTS: caFile,
        UVM_SECURITY_CONTEXT_DIR: ws.dir,
        UVM_SECURITY_POLICY: s.policyBase64,
        UVM_REFERENCE_INFO: s.uvm.referenceInfo,
        EncfsVaultHosts: vault.endpoint,
      },
    },
  )
  await waitUntil('the release request to be held by the stalled vault', async () => vault.stalled.waiting > 0, {
    exited: sidecar.exited,
    timeoutMs: 60_000,
    details: () => sidecar.log(),
  })
  await stoppedDuringStartup(t, sidecar, ws.parent)
})

test.serial('the header prefetch stalled at start-up: SIGTERM aborts it and remotefs exits 0 within 15 s', async (t) => {
  const { sasUrl, proxy } = await behindProxy('block')
  proxy.stall((req) => req.method === 'GET')
  const ws = await e2e.workspace()
  const sidecar = await e2e.sidecar([{ mount_point: path.join(ws.parent, 'hdr'), azure_url: proxy.via(sasUrl), raw_key: img.key.toString('hex') }], { args: ['--allow-raw-key'] })
  await waitUntil('the header prefetch to be held by the stalled server', async () => proxy.stalled.waiting > 0, { exited: sidecar.exited, timeoutMs: 30_000 })
  await stoppedDuringStartup(t, sidecar, ws.parent)
})
