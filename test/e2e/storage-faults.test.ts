// Storage misbehaving under a mounted filesystem, through a fault-injecting proxy in front of
// Azurite: throttling (429/503, with and without Retry-After), connection resets before and in the
// middle of an answer, slow bodies, on 10 % of the requests. Read-only readers see no error and
// the same bytes; an outage longer than the retry budget gives EIO within the documented bound
// (docs/storage-faults.md) and reads work again when storage returns; read-write keeps its
// guarantee that what fsync acknowledged is in the blob.
import test from 'ava'
import { createHash, randomBytes } from 'node:crypto'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import path from 'node:path'
import { E2eFixture, stopSidecar, leftovers, type Sidecar, type TestImage } from '../helpers/e2e.js'
import { startFaultProxy, ALL_FAULTS } from '../helpers/fault-proxy.js'

const exec = promisify(execFile)
const e2e = new E2eFixture(test)
let img: TestImage
const files: Record<string, Buffer> = {
  'big.bin': randomBytes(6 * 1024 * 1024),
  'mid.bin': randomBytes(1536 * 1024),
  'docs/small.txt': Buffer.from('small and important\n'),
}
// Small blocks and a small cache: many requests, so that faults hit every kind of read.
const cache = { block_size_kib: 256, memory_mib: 2, readahead_blocks: 2 }
const tenPercent = { every: 10, faults: ALL_FAULTS }

test.before(async () => {
  img = await e2e.image({ fsSizeMiB: 16, files })
})

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex')

/** sha256 of a file read by a child process (an application), or the error it got. */
async function readHash(file: string): Promise<{ sum?: string; error?: string; ms: number }> {
  const started = Date.now()
  try {
    const { stdout } = await exec('sha256sum', [file])
    return { sum: stdout.split(' ')[0], ms: Date.now() - started }
  } catch (err) {
    return { error: (err as { stderr?: string }).stderr ?? String(err), ms: Date.now() - started }
  }
}

/**
 * Drops the page cache of the mounted files and of the FUSE file under them (the kernel keeps
 * both), so that the next read goes to storage again.
 */
async function dropCaches(sidecar: Sidecar, mp: string): Promise<void> {
  for (const f of [...Object.keys(files).map((n) => path.join(mp, n)), path.join(sidecar.runtimeDir, '0', 'data')]) {
    await exec('dd', [`if=${f}`, 'iflag=nocache', 'count=0', 'status=none'])
  }
}

function mount(url: string, mp: string, readWrite = false): Promise<Sidecar> {
  return e2e.mount([{ mount_point: mp, azure_url: url, raw_key: img.key.toString('hex'), read_write: readWrite, cache }], { args: ['--allow-raw-key'], readyMs: 120_000 })
}

/** The image uploaded as `blob`, a fault proxy in front of Azurite, and remotefs mounting it through the proxy. */
async function faultyMount(blob: string, o: { kind: 'block' | 'page'; name: string; faults?: boolean }) {
  const { sasUrl } = await e2e.upload(img.image, { kind: o.kind, blob })
  const proxy = await startFaultProxy({ port: Number(new URL(sasUrl).port) })
  e2e.defer(() => proxy.stop())
  if (o.faults) proxy.setPlan(tenPercent)
  const ws = await e2e.workspace()
  const mp = path.join(ws.parent, o.name)
  const sidecar = await mount(proxy.via(sasUrl), mp, o.kind === 'page')
  return { sasUrl, proxy, ws, mp, sidecar }
}

test.serial('read-only under 10 % faults: every file reads back identical, with no error', async (t) => {
  const { proxy, mp, sidecar } = await faultyMount('faults-ro.img', { kind: 'block', name: 'ro', faults: true })
  // Three passes, each from storage again (the kernel's page cache dropped, the 2 MiB block cache too small).
  for (let pass = 0; pass < 3; pass++) {
    const before = proxy.requests
    await dropCaches(sidecar, mp)
    for (const [name, content] of Object.entries(files)) {
      const r = await readHash(path.join(mp, name))
      t.is(r.error, undefined, `${name}: ${r.error}`)
      t.is(r.sum, sha(content), `${name} pass ${pass}`)
    }
    t.true(proxy.requests - before > 20, `pass ${pass} read from storage (${proxy.requests - before} requests)`)
  }
  for (const f of ALL_FAULTS) t.true(proxy.counts[f] > 0, `${f} was injected (${JSON.stringify(proxy.counts)})`)
  t.log(`requests ${proxy.requests}, faults ${JSON.stringify(proxy.counts)}`)
  t.regex(await sidecar.log(), /retrying/)
  t.is(await stopSidecar(sidecar), 0)
})

test.serial('an outage longer than the retry budget: EIO within the bound, then reads work again when storage is back', async (t) => {
  const { proxy, ws, mp, sidecar } = await faultyMount('faults-outage.img', { kind: 'block', name: 'out' })
  t.is((await readHash(path.join(mp, 'docs/small.txt'))).sum, sha(files['docs/small.txt']!))
  for (const how of ['refuse', '503'] as const) {
    await dropCaches(sidecar, mp)
    proxy.down(how)
    // big.bin is not cached: its reads need storage.
    const during = await readHash(path.join(mp, 'big.bin'))
    t.regex(during.error ?? '', /Input\/output error/, `${how}: ${during.error}`)
    t.log(`${how}: EIO after ${during.ms} ms`)
    t.true(during.ms < 15_000, `${how}: EIO after ${during.ms} ms (bound for an outage that answers or refuses: about 8 s, docs/storage-faults.md)`)
    proxy.up()
    const after = await readHash(path.join(mp, 'big.bin'))
    t.is(after.error, undefined, `${how}: ${after.error}`)
    t.is(after.sum, sha(files['big.bin']!), `${how}: the same bytes once storage is back`)
  }
  t.is(await stopSidecar(sidecar), 0)
  t.deepEqual(await leftovers(sidecar.runtimeDir, [path.join(ws.parent, '.filesystem-0')]), [])
})

test.serial('read-write under 10 % faults: writes and fsyncs succeed, and after unmount the blob holds exactly what was written', async (t) => {
  const { sasUrl, proxy, ws, mp, sidecar: writer } = await faultyMount('faults-rw.img', { kind: 'page', name: 'rw', faults: true })
  const written = randomBytes(2 * 1024 * 1024)
  const source = path.join(ws.dir, 'written.bin')
  const { writeFile } = await import('node:fs/promises')
  await writeFile(source, written)
  const dd = await exec('sh', ['-c', `dd if=${source} of=${mp}/written.bin bs=64k conv=fsync status=none && echo note > ${mp}/note.txt && sync ${mp}/note.txt`]).then(
    () => 0,
    (e: { code?: number; stderr?: string }) => {
      t.log(e.stderr)
      return e.code ?? -1
    },
  )
  t.is(dd, 0, 'writes and fsync succeed through the faults')
  t.is(await stopSidecar(writer), 0, 'the flush at unmount succeeds through the faults')
  t.true(proxy.counts['429'] + proxy.counts['503'] + proxy.counts.reset > 0, JSON.stringify(proxy.counts))
  // Straight from storage, no faults: what fsync acknowledged is there.
  const ws2 = await e2e.workspace()
  const reader = await mount(sasUrl, path.join(ws2.parent, 'check'))
  t.is((await readHash(path.join(ws2.parent, 'check', 'written.bin'))).sum, sha(written))
  t.is((await readHash(path.join(ws2.parent, 'check', 'big.bin'))).sum, sha(files['big.bin']!), 'what was there before is intact')
  t.is(await stopSidecar(reader), 0)
})

test.serial(
  'Put Page black-holed: the application fsync fails with EIO within one storage budget (60 s), not minutes; the data stays and reaches storage once it answers',
  async (t) => {
    const { sasUrl, proxy, ws, mp, sidecar } = await faultyMount('faults-bh.img', { kind: 'page', name: 'bh' })
    const { writeFile } = await import('node:fs/promises')
    const written = randomBytes(1024 * 1024)
    const source = path.join(ws.dir, 'bh.bin')
    await writeFile(source, written)
    proxy.stall((req) => req.method === 'PUT' && /[?&]comp=page/.test(req.url ?? ''))
    const started = Date.now()
    const dd = await exec('dd', [`if=${source}`, `of=${mp}/bh.bin`, 'bs=64k', 'conv=fsync', 'status=none']).then(
      () => ({ code: 0, stderr: '' }),
      (e: { code?: number; stderr?: string }) => ({ code: e.code ?? -1, stderr: e.stderr ?? '' }),
    )
    const ms = Date.now() - started
    t.log(`fsync answered after ${ms} ms`)
    t.not(dd.code, 0, 'the fsync reports the failure')
    t.regex(dd.stderr, /Input\/output error/)
    // docs/storage-faults.md: one storage budget (60 s), plus room for a loaded machine; it was 311 s.
    t.true(ms < 90_000, `the application's fsync returned after ${ms} ms`)
    t.regex(await sidecar.log(), /storage took no answer to the write-backs within 60 s|write-back failed/)
    proxy.unstall()
    t.is(await stopSidecar(sidecar), 0, 'once storage answers, the stop writes everything down')
    t.regex(await sidecar.log(), /flushed \d+ bytes to storage before unmounting/)
    const ws2 = await e2e.workspace()
    const reader = await mount(sasUrl, path.join(ws2.parent, 'check'), true)
    t.is((await readHash(path.join(ws2.parent, 'check', 'big.bin'))).sum, sha(files['big.bin']!), 'the filesystem is intact')
    t.is(await stopSidecar(reader), 0)
  },
)
