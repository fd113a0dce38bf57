import test from 'ava'
import { readlink, readFile, readdir, lstat } from 'node:fs/promises'
import path from 'node:path'
import { E2eFixture, autoUnlock, literally, sidecarArgs, stopSidecar, waitReady, readFromChild, listFromChild, leftovers, type TestImage } from '../helpers/e2e.js'

const e2e = new E2eFixture(test)

async function expectFiles(t: import('ava').ExecutionContext, mountPoint: string, img: TestImage) {
  const listed = await listFromChild(`${mountPoint}/`)
  for (const [rel, content] of Object.entries(img.files)) {
    t.true(listed.includes(rel), `${rel} is listed in ${mountPoint}`)
    t.deepEqual(await readFromChild(path.join(mountPoint, rel)), Buffer.from(content), `${rel} has the packed content`)
  }
}

test.serial('mounts an image from a block blob through a SAS URL, serves its files read-only, and leaves nothing on SIGTERM', async (t) => {
  const img = await e2e.image({ files: { 'hello.txt': 'hello from encfs\n', 'dir/nested.bin': Buffer.alloc(300_000, 7) } })
  const { sasUrl } = await e2e.upload(img.image, { kind: 'block' })
  const ws = await e2e.workspace()
  const mp = path.join(ws.parent, 'data')
  const sidecar = await e2e.mount([{ mount_point: mp, azure_url: sasUrl, raw_key: img.key.toString('hex') }], { args: ['--allow-raw-key'] })
  t.is(await readlink(mp), '.filesystem-0', 'mount_point is a relative symlink to .filesystem-0')
  await expectFiles(t, mp, img)
  const mounts = await readFile('/proc/self/mounts', 'utf8')
  const line = mounts.split('\n').find((l) => l.split(' ')[1] === path.join(ws.parent, '.filesystem-0'))
  t.truthy(line, 'ext4 is mounted at .filesystem-0')
  t.regex(line!, / ext4 ro[, ]/)
  const log = await sidecar.log()
  const auto = await autoUnlock()
  t.regex(log, new RegExp(`unlock ${auto.mode} \\(${literally(auto.reason)}\\)`), `auto chose ${auto.mode} here and explains why`)
  t.false(log.includes(img.key.toString('hex')), 'the key never reaches the log')
  t.false(log.includes(new URL(sasUrl).searchParams.get('sig') ?? '<no sig>'), 'the SAS signature never reaches the log')
  t.is(await stopSidecar(sidecar), 0, 'SIGTERM exits 0')
  t.deepEqual(await leftovers(sidecar.runtimeDir, [path.join(ws.parent, '.filesystem-0')]), [])
  await t.throwsAsync(lstat(mp), undefined, 'symlink removed')
  await t.throwsAsync(lstat(path.join(ws.parent, '.filesystem-0')), undefined, 'mount directory removed')
  await t.throwsAsync(lstat(sidecar.runtimeDir), undefined, 'runtime dir removed')
})

test.serial('argon2id keyslot, 512-byte sectors, page blob in a public container (anonymous), with fuse2fs', async (t) => {
  const img = await e2e.image({ pbkdf: 'argon2id', sectorSize: 512, files: { 'a.txt': 'argon2 and 512\n' } })
  const { url } = await e2e.upload(img.image, { kind: 'page', publicAccess: true })
  const ws = await e2e.workspace()
  const mp = path.join(ws.parent, 'pub')
  const sidecar = await e2e.mount([{ mount_point: mp, azure_url: url, raw_key: img.key.toString('hex'), mounter: 'fuse2fs' }], { env: { EncfsAllowRawKey: 'true' } })
  await expectFiles(t, mp, img)
  const mounts = await readFile('/proc/self/mounts', 'utf8')
  t.regex(mounts, new RegExp(`${path.join(ws.parent, '.filesystem-0')} fuse`), 'mounted through fuse2fs, no loop device')
  t.is(await stopSidecar(sidecar), 0)
  t.deepEqual(await leftovers(sidecar.runtimeDir, [path.join(ws.parent, '.filesystem-0')]), [])
})

test.serial('two filesystems at once, and a local file source', async (t) => {
  const a = await e2e.image({ files: { 'one.txt': 'first\n' } })
  const b = await e2e.image({ sectorSize: 512, files: { 'two.txt': 'second\n' } })
  const { sasUrl } = await e2e.upload(a.image, { kind: 'page' })
  const ws = await e2e.workspace()
  const mpA = path.join(ws.parent, 'a')
  const mpB = path.join(ws.parent, 'b')
  const sidecar = await e2e.mount(
    [
      { mount_point: mpA, azure_url: sasUrl, raw_key: a.key.toString('hex') },
      { mount_point: mpB, azure_url: `file://${b.image}`, raw_key: b.key.toString('hex') },
    ],
    { args: ['--allow-raw-key'] },
  )
  t.is(await readlink(mpB), '.filesystem-1')
  await expectFiles(t, mpA, a)
  await expectFiles(t, mpB, b)
  t.is(await stopSidecar(sidecar, 'SIGINT'), 0, 'Ctrl-C stops as cleanly as SIGTERM')
  for (const mp of [mpA, mpB]) await t.throwsAsync(lstat(mp), undefined, `${mp} symlink removed`)
  t.deepEqual(await leftovers(sidecar.runtimeDir, [path.join(ws.parent, '.filesystem-0'), path.join(ws.parent, '.filesystem-1')]), [])
})

test.serial('after SIGKILL, the next start clears the stale mounts and mounts again', async (t) => {
  const img = await e2e.image({ files: { 'again.txt': 'still here\n' } })
  const { sasUrl } = await e2e.upload(img.image, { kind: 'block' })
  const ws = await e2e.workspace()
  const mp = path.join(ws.parent, 'k')
  const b64 = sidecarArgs([{ mount_point: mp, azure_url: sasUrl, raw_key: img.key.toString('hex') }])
  const first = await e2e.sidecar(b64, { args: ['--allow-raw-key'] })
  await waitReady(first, [mp])
  await stopSidecar(first, 'SIGKILL')
  t.true((await leftovers(first.runtimeDir, [path.join(ws.parent, '.filesystem-0')])).length > 0, 'the killed run left mounts behind')
  const second = await e2e.sidecar(b64, { args: ['--allow-raw-key'], runtimeDir: first.runtimeDir })
  await waitReady(second, [mp], 60_000)
  await expectFiles(t, mp, img)
  t.regex(await second.log(), /stale/)
  t.is(await stopSidecar(second), 0)
  t.deepEqual(await leftovers(second.runtimeDir, [path.join(ws.parent, '.filesystem-0')]), [])
  t.deepEqual(await readdir(ws.parent), [], 'no mount point and no empty .filesystem-0 left')
})
