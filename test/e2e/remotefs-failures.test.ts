import test from 'ava'
import { lstat, rm, mkdir, copyFile, open, readdir } from 'node:fs/promises'
import path from 'node:path'
import { E2eFixture, autoUnlock, readFromChild, sidecarArgs, stopSidecar, leftovers, type FsConfig, type TestImage } from '../helpers/e2e.js'

const e2e = new E2eFixture(test)
let good: TestImage

test.before(async () => {
  good = await e2e.image({ files: { 'ok.txt': 'ok\n' } })
})

/** Runs remotefs to completion (it must fail) and returns what a user sees. */
const runFailing = (fs: FsConfig[] | string | undefined, o: { args?: string[]; env?: Record<string, string> } = {}) =>
  e2e.runToEnd(fs, { args: o.args ?? ['--allow-raw-key'], env: o.env })

async function assertNothingLeft(t: import('ava').ExecutionContext, runtimeDir: string, parent: string, mountPoints: string[]) {
  const dirs = mountPoints.map((_, i) => path.join(parent, `.filesystem-${i}`))
  t.deepEqual(await leftovers(runtimeDir, dirs), [], 'no mounts or loop devices left')
  for (const p of [...mountPoints, ...dirs]) await t.throwsAsync(lstat(p), undefined, `${p} does not exist`)
  // remotefs removes the runtime directory it used; the test made it, so at most it may be empty.
  t.deepEqual(await readdir(runtimeDir).catch(() => []), [], 'runtime directory left empty')
  await rm(runtimeDir, { recursive: true, force: true })
}

test.serial('a wrong key fails start-up with a keyslot error and leaves nothing behind', async (t) => {
  const { sasUrl } = await e2e.upload(good.image, { kind: 'block' })
  const ws = await e2e.workspace()
  const mp = path.join(ws.parent, 'x')
  const r = await runFailing([{ mount_point: mp, azure_url: sasUrl, raw_key: 'ab'.repeat(32) }])
  t.not(r.code, 0)
  t.regex(r.output, /filesystem 0 .*no keyslot can be opened/i)
  t.regex(r.output, /LUKS_WRONG_KEY/)
  await assertNothingLeft(t, r.runtimeDir, ws.parent, [mp])
})

test.serial('a corrupt header is refused before anything is mounted', async (t) => {
  const ws = await e2e.workspace()
  const bad = path.join(ws.dir, 'bad.img')
  await copyFile(good.image, bad)
  const fh = await open(bad, 'r+')
  // Break the JSON area of both header copies (checksums no longer match).
  await fh.write(Buffer.from('XXXX'), 0, 4, 4096 + 10)
  await fh.write(Buffer.from('XXXX'), 0, 4, 16384 + 4096 + 10)
  await fh.close()
  const { sasUrl } = await e2e.upload(bad, { kind: 'block' })
  const mp = path.join(ws.parent, 'x')
  const r = await runFailing([{ mount_point: mp, azure_url: sasUrl, raw_key: good.key.toString('hex') }])
  t.not(r.code, 0)
  t.regex(r.output, /LUKS_HEADER_CORRUPT/)
  await assertNothingLeft(t, r.runtimeDir, ws.parent, [mp])
})

test.serial('a blob that does not exist names the URL (without the SAS) and what to check', async (t) => {
  const { url } = await e2e.upload(good.image, { kind: 'block', publicAccess: true })
  const ws = await e2e.workspace()
  const mp = path.join(ws.parent, 'x')
  const r = await runFailing([{ mount_point: mp, azure_url: url.replace(/\/[^/]+$/, '/no-such-blob.img'), raw_key: good.key.toString('hex') }])
  t.not(r.code, 0)
  t.regex(r.output, /STORAGE_NOT_FOUND/)
  t.regex(r.output, /no-such-blob\.img/)
  await assertNothingLeft(t, r.runtimeDir, ws.parent, [mp])

  // A SAS made for another blob is a 403: the message points at the SAS, and never prints its signature.
  const { sasUrl } = await e2e.upload(good.image, { kind: 'block' })
  const r2 = await runFailing([{ mount_point: mp, azure_url: sasUrl.replace(/\/[^/?]+\?/, '/other-blob.img?'), raw_key: good.key.toString('hex') }])
  t.not(r2.code, 0)
  t.regex(r2.output, /STORAGE_ACCESS_DENIED/)
  t.regex(r2.output, /SAS/)
  t.false(r2.output.includes('sig='), 'SAS signature not printed')
  t.false(r2.log.includes('sig='), 'SAS signature not logged')
  await assertNothingLeft(t, r2.runtimeDir, ws.parent, [mp])
})

test.serial('when the second filesystem fails, the first is unmounted again', async (t) => {
  const { sasUrl } = await e2e.upload(good.image, { kind: 'block' })
  const ws = await e2e.workspace()
  const mpA = path.join(ws.parent, 'a')
  const mpB = path.join(ws.parent, 'b')
  const r = await runFailing([
    { mount_point: mpA, azure_url: sasUrl, raw_key: good.key.toString('hex') },
    { mount_point: mpB, azure_url: sasUrl, raw_key: 'cd'.repeat(32) },
  ])
  t.not(r.code, 0)
  t.regex(r.output, /filesystem 1 \(.*\/b\)/)
  t.regex(r.log, /unmounting the filesystems already mounted/)
  await assertNothingLeft(t, r.runtimeDir, ws.parent, [mpA, mpB])
})

test.serial('raw_key without the opt-in is refused with a message that says how to opt in', async (t) => {
  const ws = await e2e.workspace()
  const mp = path.join(ws.parent, 'x')
  const r = await runFailing([{ mount_point: mp, azure_url: `file://${good.image}`, raw_key: good.key.toString('hex') }], { args: [] })
  t.not(r.code, 0)
  t.regex(r.output, /azure_filesystems\[0\]\.raw_key/)
  t.regex(r.output, /--allow-raw-key/)
  t.regex(r.output, /EncfsAllowRawKey=true/)
  t.false(r.output.includes(good.key.toString('hex')))
  await assertNothingLeft(t, r.runtimeDir, ws.parent, [mp])
})

test.serial('bad configuration inputs exit non-zero with their own messages', async (t) => {
  const ws = await e2e.workspace()
  const cases: [string | undefined, RegExp, Record<string, string>?][] = [
    ['%%%not base64%%%', /CONFIG_BASE64/],
    [Buffer.from('{"azure_filesystems": [').toString('base64'), /CONFIG_JSON/],
    [sidecarArgs([{ mount_point: 'relative/path', azure_url: `file://${good.image}`, raw_key: '00' }]), /azure_filesystems\[0\]\.mount_point: must be an absolute path/],
    [
      sidecarArgs([
        { mount_point: `${ws.parent}/same`, azure_url: `file://${good.image}`, raw_key: '00' },
        { mount_point: `${ws.parent}/same`, azure_url: `file://${good.image}`, raw_key: '00' },
      ]),
      /azure_filesystems\[1\]\.mount_point: .*azure_filesystems\[0\]/,
    ],
    [undefined, /CONFIG_MISSING.*EncfsSideCarArgs|EncfsSideCarArgs.*CONFIG_MISSING/s, { EncfsSideCarArgs: '' }],
  ]
  for (const [b64, expected, env] of cases) {
    const r = await runFailing(b64, { env })
    t.not(r.code, 0, `exit code for ${expected}`)
    t.regex(r.output, expected)
    await rm(r.runtimeDir, { recursive: true, force: true })
  }
})

test.serial('--unlock kernel: where dm-crypt is missing it says so and suggests userspace; where it is there it is used', async (t) => {
  const ws = await e2e.workspace()
  const mp = path.join(ws.parent, 'x')
  const filesystems = [{ mount_point: mp, azure_url: `file://${good.image}`, raw_key: good.key.toString('hex') }]
  if ((await autoUnlock()).mode === 'kernel') {
    const sidecar = await e2e.mount(filesystems, { args: ['--allow-raw-key', '--unlock', 'kernel'] })
    t.regex(await sidecar.log(), /unlock kernel \(requested\)/)
    t.is((await readFromChild(path.join(mp, 'ok.txt'))).toString(), 'ok\n')
    t.is(await stopSidecar(sidecar), 0)
    t.deepEqual(await leftovers(sidecar.runtimeDir, [path.join(ws.parent, '.filesystem-0')]), [])
    return
  }
  const r = await runFailing(filesystems, { args: ['--allow-raw-key', '--unlock', 'kernel'] })
  t.not(r.code, 0)
  t.regex(r.output, /UNLOCK_KERNEL_UNAVAILABLE/)
  t.regex(r.output, /--unlock userspace/)
  await assertNothingLeft(t, r.runtimeDir, ws.parent, [mp])
})

test.serial('a mount point that already exists as a directory is refused before anything is touched', async (t) => {
  const ws = await e2e.workspace()
  const mp = path.join(ws.parent, 'exists')
  await mkdir(mp)
  const r = await runFailing([{ mount_point: mp, azure_url: `file://${good.image}`, raw_key: good.key.toString('hex') }])
  t.not(r.code, 0)
  t.regex(r.output, /MOUNT_POINT_EXISTS/)
  t.true((await lstat(mp)).isDirectory(), 'the existing directory is untouched')
  t.deepEqual(await leftovers(r.runtimeDir, [path.join(ws.parent, '.filesystem-0')]), [])
  t.deepEqual(await readdir(r.runtimeDir).catch(() => []), [])
  await rm(r.runtimeDir, { recursive: true, force: true })
})

test.serial('a blob replaced during the mount fails reads loudly instead of mixing versions', async (t) => {
  const big = await e2e.image({ fsSizeMiB: 24, files: { 'first.txt': 'a\n', 'later.bin': Buffer.alloc(12 * 1024 * 1024, 9) } })
  const { sasUrl } = await e2e.upload(big.image, { kind: 'block', blob: 'replaced.img' })
  const ws = await e2e.workspace()
  const mp = path.join(ws.parent, 'r')
  const sidecar = await e2e.mount([{ mount_point: mp, azure_url: sasUrl, raw_key: big.key.toString('hex'), cache: { block_size_kib: 256, memory_mib: 1, readahead_blocks: 0 } }], {
    args: ['--allow-raw-key'],
  })
  await e2e.upload(good.image, { kind: 'block', blob: 'replaced.img' })
  const { execFile } = await import('node:child_process')
  const err = await new Promise<Error | null>((resolve) => execFile('cat', [path.join(mp, 'later.bin')], { encoding: 'buffer', maxBuffer: 1 << 26 }, (e) => resolve(e)))
  t.truthy(err, 'reading data that was not cached yet fails')
  t.regex(await sidecar.log(), /STORAGE_BLOB_CHANGED/)
  t.is(await stopSidecar(sidecar), 0)
  t.deepEqual(await leftovers(sidecar.runtimeDir, [path.join(ws.parent, '.filesystem-0')]), [])
})
