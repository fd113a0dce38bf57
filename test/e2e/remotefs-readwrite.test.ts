// Read-write filesystems on page blobs: durable writes, crash safety, storage outages, two writers.
import test from 'ava'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { writeFile, rm } from 'node:fs/promises'
import path from 'node:path'
import { BlobClient } from '@azure/storage-blob'
import { E2eFixture, stopSidecar, readFromChild, leftovers, type Sidecar, type TestImage } from '../helpers/e2e.js'
import { FileSource } from '../../src/storage/file-source.js'
import { startTcpProxy } from '../helpers/tcp-proxy.js'
import { takeOverLease } from '../helpers/fault-proxy.js'
import { randomBytes } from 'node:crypto'
import { freePort } from '../helpers/e2e.js'
import { LuksVolume } from '../../src/luks/volume.js'

const exec = promisify(execFile)
const env = { ...process.env, PATH: `${process.env.PATH}:/usr/sbin:/sbin` }
const e2e = new E2eFixture(test)
const image = () => e2e.image({ fsSizeMiB: 24, files: { 'seed.txt': 'seed\n' } })

/** Runs a shell command in a child process, as an application container would. */
async function sh(script: string): Promise<{ code: number; out: string }> {
  try {
    const { stdout } = await exec('sh', ['-c', script], { env })
    return { code: 0, out: stdout }
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string }
    return { code: e.code ?? -1, out: `${e.stdout ?? ''}${e.stderr ?? ''}` }
  }
}

function mountRw(url: string, img: TestImage, mp: string, o: { runtimeDir?: string; readWrite?: boolean } = {}): Promise<Sidecar> {
  return e2e.mount([{ mount_point: mp, azure_url: url, raw_key: img.key.toString('hex'), read_write: o.readWrite ?? true }], {
    args: ['--allow-raw-key'],
    runtimeDir: o.runtimeDir,
  })
}

/** The blob as it is in storage, decrypted by the userspace reader, checked by e2fsck and read by debugfs. */
async function offlineCheck(t: import('ava').ExecutionContext, url: string, img: TestImage, file: string): Promise<string> {
  const enc = path.join(img.dir, 'downloaded.img')
  await new BlobClient(url).downloadToFile(enc)
  const volume = await LuksVolume.open(await FileSource.open(enc), img.key)
  const plain = path.join(img.dir, 'offline-plain.img')
  await writeFile(plain, await volume.read(0, volume.size))
  await volume.close()
  const fsck = await exec('e2fsck', ['-fn', plain], { env }).then(
    () => 0,
    (e: { code?: number; stdout?: string }) => {
      t.log(e.stdout)
      return e.code ?? -1
    },
  )
  t.is(fsck, 0, 'e2fsck -fn finds the filesystem clean')
  const { stdout } = await exec('debugfs', ['-R', `cat ${file}`, plain], { env })
  return stdout
}

test.serial('writes with fsync survive unmount: mounted again and decrypted offline, the files are there and ext4 is clean', async (t) => {
  const img = await image()
  const { sasUrl } = await e2e.upload(img.image, { kind: 'page' })
  const ws = await e2e.workspace()
  const mp = path.join(ws.parent, 'rw')
  const first = await mountRw(sasUrl, img, mp)
  const w = await sh(
    `echo "written through encfs" > ${mp}/new.txt && dd if=/dev/urandom of=${mp}/random.bin bs=1M count=3 conv=fsync status=none && sha256sum ${mp}/random.bin | cut -d' ' -f1`,
  )
  t.is(w.code, 0, w.out)
  const sum = w.out.trim()
  t.is(await stopSidecar(first), 0)
  t.regex(await first.log(), /flushed \d+ bytes to storage before unmounting/)
  t.deepEqual(await leftovers(first.runtimeDir, [path.join(ws.parent, '.filesystem-0')]), [])

  const again = await mountRw(sasUrl, img, mp, { readWrite: false })
  t.is((await readFromChild(path.join(mp, 'new.txt'))).toString(), 'written through encfs\n')
  t.is((await sh(`sha256sum ${mp}/random.bin | cut -d' ' -f1`)).out.trim(), sum)
  t.is(await stopSidecar(again), 0)
  t.is(await offlineCheck(t, sasUrl, img, '/new.txt'), 'written through encfs\n')
})

test.serial('after SIGKILL right after a successful fsync, the data is there: the restart takes its lease back', async (t) => {
  const img = await image()
  const { sasUrl } = await e2e.upload(img.image, { kind: 'page' })
  const ws = await e2e.workspace()
  const mp = path.join(ws.parent, 'crash')
  const first = await mountRw(sasUrl, img, mp)
  const w = await sh(`dd if=/dev/urandom of=${mp}/acked.bin bs=64k count=40 conv=fsync status=none && sha256sum ${mp}/acked.bin | cut -d' ' -f1`)
  t.is(w.code, 0, w.out)
  await stopSidecar(first, 'SIGKILL')
  const second = await mountRw(sasUrl, img, mp, { runtimeDir: first.runtimeDir })
  t.regex(await second.log(), /took back the lease of an earlier run/)
  t.is((await sh(`sha256sum ${mp}/acked.bin | cut -d' ' -f1`)).out.trim(), w.out.trim())
  t.is(await stopSidecar(second), 0)
})

test.serial('a second writer is refused while the first holds the lease; block blobs and read-only SAS cannot be mounted read-write', async (t) => {
  const img = await image()
  const { sasUrl, url } = await e2e.upload(img.image, { kind: 'page' })
  const ws = await e2e.workspace()
  const first = await mountRw(sasUrl, img, path.join(ws.parent, 'one'))
  const run = async (fsUrl: string, mp: string, extra: string[] = []) => {
    const r = await e2e.runToEnd([{ mount_point: mp, azure_url: fsUrl, raw_key: img.key.toString('hex'), read_write: true }], { args: ['--allow-raw-key', ...extra] })
    await rm(r.runtimeDir, { recursive: true, force: true })
    return r
  }
  // In another directory: in the same one, both would want .filesystem-0 (MOUNT_DIR_FOREIGN, test/mount/stale.test.ts).
  const ws2 = await e2e.workspace()
  const second = await run(sasUrl, path.join(ws2.parent, 'two'), ['--lease-wait', '3'])
  t.not(second.code, 0)
  t.regex(second.output, /leased by another writer.*\[STORAGE_LEASED\]/s)
  t.is(await stopSidecar(first), 0)

  const block = await e2e.upload(img.image, { kind: 'block', sasPermissions: 'rw' })
  const blockRun = await run(block.sasUrl, path.join(ws.parent, 'three'))
  t.regex(blockRun.output, /read_write needs a page blob, but .* is a BlockBlob.*\[STORAGE_NEEDS_PAGE_BLOB\]/s)
  const readOnlySas = await e2e.upload(img.image, { kind: 'page', sasPermissions: 'r' })
  t.regex((await run(readOnlySas.sasUrl, path.join(ws.parent, 'five'))).output, /grants sp=r; make a SAS with sp=rw/)
  const anonymous = await run(url, path.join(ws.parent, 'four'))
  t.regex(anonymous.output, /anonymous public URL cannot.*\[STORAGE_WRITE_NEEDS_CREDENTIAL\]/s)
})

test.serial('storage going away: the fsync fails with EIO, nothing acknowledged is lost, and it all arrives once storage is back', async (t) => {
  const img = await image()
  const { sasUrl } = await e2e.upload(img.image, { kind: 'page' })
  const proxy = await startTcpProxy(Number(new URL(sasUrl).port))
  e2e.defer(() => proxy.stop())
  const viaProxy = sasUrl.replace(/:\d+\//, `:${proxy.port}/`)
  const ws = await e2e.workspace()
  const mp = path.join(ws.parent, 'flaky')
  const sidecar = await mountRw(viaProxy, img, mp)
  // Both files' blocks are cached before storage goes: the later writes need no reads.
  t.is((await sh(`echo before > ${mp}/a.txt && sync ${mp}/a.txt && dd if=/dev/zero of=${mp}/b.bin bs=64k count=16 conv=fsync status=none`)).code, 0)
  proxy.cut()
  const during = await sh(
    `dd if=/dev/urandom of=/tmp/encfs-b-$$ bs=64k count=16 status=none && dd if=/tmp/encfs-b-$$ of=${mp}/b.bin bs=64k conv=notrunc,fsync status=none; code=$?; sha256sum /tmp/encfs-b-$$ | cut -d' ' -f1; rm -f /tmp/encfs-b-$$; exit $code`,
  )
  t.not(during.code, 0, 'fsync reports the failure')
  t.regex(during.out, /Input\/output error/)
  const sum = during.out
    .trim()
    .split('\n')
    .find((l) => /^[0-9a-f]{64}$/.test(l))!
  t.regex(await sidecar.log(), /write-back failed; the data stays dirty in memory/)
  proxy.restore()
  t.is((await sh(`sync ${mp}/b.bin`)).code, 0, 'once storage is back, a new fsync succeeds')
  t.is(await stopSidecar(sidecar), 0)
  t.regex(await sidecar.log(), /Detected aborted journal|flushed \d+ bytes/)
  // ext4 aborted its journal when the flush failed: mounting read-write replays it.
  const again = await mountRw(viaProxy, img, mp)
  t.is((await readFromChild(path.join(mp, 'a.txt'))).toString(), 'before\n')
  t.is((await sh(`sha256sum ${mp}/b.bin | cut -d' ' -f1`)).out.trim(), sum, 'the data written while storage was away arrived')
  t.is(await stopSidecar(again), 0)
})

test.serial(
  'another writer breaks the lease and writes: remotefs serves none of its bytes, fails reads and writes that need storage with EIO, says so in /status, and still unmounts everything',
  async (t) => {
    const untouched = randomBytes(4 * 1024 * 1024)
    const img = await e2e.image({ fsSizeMiB: 24, files: { 'seed.txt': 'seed\n', 'untouched.bin': untouched } })
    const { sasUrl } = await e2e.upload(img.image, { kind: 'page' })
    const ws = await e2e.workspace()
    const mp = path.join(ws.parent, 'fenced')
    const port = await freePort()
    // A small cache without readahead: what was not read is not in memory.
    const cache = { block_size_kib: 64, memory_mib: 1, readahead_blocks: 0 }
    const sidecar = await e2e.mount([{ mount_point: mp, azure_url: sasUrl, raw_key: img.key.toString('hex'), read_write: true, cache }], {
      args: ['--allow-raw-key', '-port', String(port)],
    })
    t.is((await sh(`echo mine > ${mp}/mine.txt && sync ${mp}/mine.txt`)).code, 0)
    // untouched.bin was never read: its blocks come from storage. The other writer overwrites them (ciphertext of nothing: garbage once decrypted).
    const { stdout } = await exec('debugfs', ['-R', 'bmap /untouched.bin 0', img.plain], { env })
    const at = img.payloadOffset + Number(stdout.trim()) * 4096
    const other = await takeOverLease(sasUrl, at, randomBytes(64 * 1024))
    const read = await sh(`cat ${mp}/untouched.bin > /dev/null`)
    t.not(read.code, 0)
    t.regex(read.out, /Input\/output error/, "the other writer's bytes are not served")
    const write = await sh(`echo late > ${mp}/late.txt && sync ${mp}/late.txt`)
    t.not(write.code, 0, 'writes fail too')
    const log = await sidecar.log()
    t.regex(log, /LEASE LOST: .*remotefs no longer holds the write lease/)
    t.notRegex(log, /STORAGE_BLOB_CHANGED/, 'not mistaken for a replaced blob')
    const status = (await (await fetch(`http://127.0.0.1:${port}/status`)).json()) as { filesystems: { lease?: { held: boolean; reason?: string } }[] }
    t.is(status.filesystems[0]!.lease?.held, false)
    t.regex(status.filesystems[0]!.lease?.reason ?? '', /no longer holds the write lease/)
    const started = Date.now()
    const code = await stopSidecar(sidecar)
    t.true(Date.now() - started < 15_000, `stopped in ${Date.now() - started} ms`)
    t.not(code, null)
    t.deepEqual(await leftovers(sidecar.runtimeDir, [path.join(ws.parent, '.filesystem-0')]), [], 'FUSE unmounted even though the flush failed (no dead mount)')
    t.regex(await sidecar.log(), /bytes in \d+ range\(s\) were not written to storage and are lost|flushed \d+ bytes/)
    const props = await new BlobClient(sasUrl).getProperties()
    t.is(props.leaseState, 'leased', "the other writer's lease is left alone")
    await new BlobClient(sasUrl).getBlobLeaseClient(other).releaseLease()
  },
)
