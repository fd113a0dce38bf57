// Both FUSE backends under a real remotefs: the choice is logged with its reason, and data written
// through one backend is read back through the other.
import test from 'ava'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { readFile } from 'node:fs/promises'
import path from 'node:path'
import { E2eFixture, stopSidecar, readFromChild, leftovers, type Sidecar, type TestImage } from '../helpers/e2e.js'

const exec = promisify(execFile)
const e2e = new E2eFixture(test)
let img: TestImage

test.before(async () => {
  img = await e2e.image({ fsSizeMiB: 24, files: { 'hello.txt': 'hello from encfs\n', 'big.bin': Buffer.alloc(3 * 1024 * 1024, 5) } })
})
function mount(url: string, mp: string, o: { args?: string[]; env?: Record<string, string>; readWrite?: boolean } = {}): Promise<Sidecar> {
  // Userspace unlock on every machine: the loop device over the FUSE file is what these tests look at.
  return e2e.mount([{ mount_point: mp, azure_url: url, raw_key: img.key.toString('hex'), read_write: o.readWrite ?? false, unlock: 'userspace' }], {
    args: ['--allow-raw-key', ...(o.args ?? [])],
    env: o.env,
  })
}

test.serial('auto picks libfuse3 and logs why; --fuse libfuse2 and EncfsFuse=libfuse2 pick fuse-native; each serves the files', async (t) => {
  const { sasUrl } = await e2e.upload(img.image, { kind: 'block' })
  const ws = await e2e.workspace()
  const cases: [string, { args?: string[]; env?: Record<string, string> }, RegExp, string][] = [
    ['auto', {}, /FUSE backend libfuse3 \(the libfuse3 addon loads/, '1'],
    ['flag', { args: ['--fuse', 'libfuse2'] }, /FUSE backend libfuse2 \(requested\)/, '0'],
    ['env', { env: { EncfsFuse: 'libfuse2' } }, /FUSE backend libfuse2 \(requested\)/, '0'],
  ]
  for (const [name, o, expected, dio] of cases) {
    const mp = path.join(ws.parent, name)
    const sidecar = await mount(sasUrl, mp, o)
    t.regex(await sidecar.log(), expected, name)
    // The loop device over a libfuse3 file reads it with direct I/O (concurrent requests, no second page cache).
    const { stdout } = await exec('losetup', ['--list', '--noheadings', '--output', 'NAME,BACK-FILE'])
    const loop = stdout
      .split('\n')
      .find((l) => l.includes(sidecar.runtimeDir))!
      .trim()
      .split(/\s+/)[0]!
    t.is((await readFile(`/sys/block/${path.basename(loop)}/loop/dio`, 'utf8')).trim(), dio, `${name}: loop direct I/O`)
    t.is((await readFromChild(path.join(mp, 'hello.txt'))).toString(), 'hello from encfs\n')
    t.true((await readFromChild(path.join(mp, 'big.bin'))).equals(Buffer.alloc(3 * 1024 * 1024, 5)))
    t.is(await stopSidecar(sidecar), 0)
    t.deepEqual(await leftovers(sidecar.runtimeDir, [path.join(ws.parent, `.filesystem-0`)]), [])
  }
  const bad = await e2e.runToEnd([{ mount_point: path.join(ws.parent, 'bad'), azure_url: sasUrl, raw_key: img.key.toString('hex') }], {
    args: ['--allow-raw-key', '--fuse', 'libfuse9'],
  })
  t.not(bad.code, 0)
  t.regex(bad.output, /fuse.*libfuse9|Invalid values/s)
})

test.serial('read-write: written and fsynced through libfuse2, read back through libfuse3 (and the other way round)', async (t) => {
  const { sasUrl } = await e2e.upload(img.image, { kind: 'page' })
  const ws = await e2e.workspace()
  const mp = path.join(ws.parent, 'rw')
  for (const [writer, reader] of [
    ['libfuse2', 'libfuse3'],
    ['libfuse3', 'libfuse2'],
  ] as const) {
    const w = await mount(sasUrl, mp, { args: ['--fuse', writer], readWrite: true })
    await exec('sh', ['-c', `dd if=/dev/urandom of=${mp}/by-${writer}.bin bs=256k count=12 conv=fsync status=none`])
    const sum = (await exec('sha256sum', [`${mp}/by-${writer}.bin`])).stdout.split(' ')[0]
    t.is(await stopSidecar(w), 0)
    const r = await mount(sasUrl, mp, { args: ['--fuse', reader] })
    t.is((await exec('sha256sum', [`${mp}/by-${writer}.bin`])).stdout.split(' ')[0], sum, `written with ${writer}, read with ${reader}`)
    t.is(await stopSidecar(r), 0)
  }
})
