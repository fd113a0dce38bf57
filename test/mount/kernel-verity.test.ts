import test from 'ava'
import path from 'node:path'
import { mkdir, readFile, stat, lstat } from 'node:fs/promises'
import { mountFilesystem } from '../../src/mount/mount-filesystem.js'
import type { CommandRunner, CommandOptions } from '../../src/process/run.js'
import type { Capabilities } from '../../src/mount/capabilities.js'
import { rawKeyProvider } from '../../src/keys/provider.js'
import { silentLogger } from '../../src/log/logger.js'
import type { FilesystemPlan } from '../../src/config/plan.js'
import type { VerityPlan } from '../../src/verity/open-verity.js'
import { makeEncryptedImage, type TestImage } from '../helpers/images.js'
import { readFromChild } from '../helpers/remotefs.js'
import { tempDir } from '../helpers/temp.js'
import { veritysetupFormat } from '../helpers/verity.js'

// device-mapper does not exist on the development machine: the kernel path is checked up to the
// exact commands it runs, with a runner that records them and plays veritysetup / cryptsetup / mount.
const dmCaps: Capabilities = { deviceMapper: true, cryptsetup: true, loop: true, fuse2fs: true, fuse: true }

interface Call {
  command: string
  args: string[]
  input?: Buffer
}

function recorder(answer: (c: Call) => number = () => 0) {
  const calls: Call[] = []
  const run: CommandRunner = async (command: string, args: string[], options?: CommandOptions) => {
    const call = { command, args, input: options?.input ? Buffer.from(options.input) : undefined }
    calls.push(call)
    const code = answer(call)
    if (code !== 0) throw Object.assign(new Error(`${command} failed`), { result: { stdout: '', stderr: 'failed', code } })
    return { stdout: '', stderr: '', code }
  }
  return { calls, run }
}

let img: TestImage
let imageBytes: number
let appendedRoot: Buffer
let separateRoot: Buffer
let hashFile: string
test.before(async () => {
  img = await makeEncryptedImage({ files: { 'k.txt': 'kernel and verity\n' } })
  imageBytes = (await stat(img.image)).size
  hashFile = path.join(img.dir, 'tree.verity')
  separateRoot = await veritysetupFormat(img.image, hashFile)
  // The same image with its tree appended (hash_offset), in a copy.
  const { copyFile } = await import('node:fs/promises')
  await copyFile(img.image, `${img.image}.appended`)
  appendedRoot = await veritysetupFormat(`${img.image}.appended`, `${img.image}.appended`, { hashOffset: imageBytes, dataBlocks: imageBytes / 4096 })
})
test.after.always(async () => {
  await img?.cleanup()
})

async function plan(dir: string, url: string, verity: VerityPlan): Promise<FilesystemPlan> {
  const parentDir = path.join(dir, 'mnt')
  await mkdir(parentDir, { recursive: true })
  return {
    index: 0,
    mountPoint: path.join(parentDir, 'share'),
    parentDir,
    mountDir: path.join(parentDir, '.filesystem-0'),
    symlinkTarget: '.filesystem-0',
    url,
    private: false,
    readWrite: false,
    unlock: 'kernel',
    mounter: 'loop',
    verity,
    key: { kind: 'raw', hex: img.key.toString('hex') },
  }
}

test.serial('kernel mode: veritysetup open maps the served image and tree, dm-crypt opens on the verity mapping; closed in reverse', async (t) => {
  const tmp = await tempDir()
  const p = await plan(tmp.dir, `${img.image}.appended`, { rootHash: appendedRoot.toString('hex'), hashOffset: imageBytes })
  const runtimeDir = path.join(tmp.dir, 'rt')
  const { calls, run } = recorder()
  const fs = await mountFilesystem(p, { run, caps: dmCaps, keys: rawKeyProvider, runtimeDir, logger: silentLogger })
  try {
    const data = path.join(runtimeDir, '0', 'data')
    const hash = path.join(runtimeDir, '0', 'hash')
    t.deepEqual(calls[0], { command: 'veritysetup', args: ['open', data, 'remote-verity-0', hash, appendedRoot.toString('hex')], input: undefined })
    t.deepEqual(calls[1]?.args, ['open', '--type', 'luks2', '--key-file=-', '--readonly', '/dev/mapper/remote-verity-0', 'remote-crypt-0'])
    t.deepEqual(calls[1]?.input, img.key)
    t.deepEqual(calls[2], { command: 'mount', args: ['-t', 'ext4', '-o', 'ro,noload', '/dev/mapper/remote-crypt-0', p.mountDir], input: undefined })
    const whole = await readFile(`${img.image}.appended`)
    t.true((await readFromChild(data)).equals(whole.subarray(0, imageBytes)), 'the data file is the covered data area only, never the tree')
    t.true((await readFromChild(hash)).equals(whole.subarray(imageBytes)), 'the hash file is the hash area, superblock first')
    t.truthy(fs.verity, 'userspace verification stays in the chain (and feeds /status)')
    t.true(fs.verity!.stats().verifiedBlocks >= imageBytes / 4096)
  } finally {
    await fs.unmount()
    await tmp.cleanup()
  }
  t.deepEqual(
    calls.slice(-2).map((c) => `${c.command} ${c.args.join(' ')}`),
    ['cryptsetup close remote-crypt-0', 'veritysetup close remote-verity-0'],
  )
})

test.serial('kernel mode with hash_url: the hash file is the tree blob', async (t) => {
  const tmp = await tempDir()
  const p = await plan(tmp.dir, img.image, { rootHash: separateRoot.toString('hex'), hashUrl: hashFile })
  const runtimeDir = path.join(tmp.dir, 'rt')
  const { calls, run } = recorder()
  const fs = await mountFilesystem(p, { run, caps: dmCaps, keys: rawKeyProvider, runtimeDir, logger: silentLogger })
  try {
    t.is(calls[0]?.command, 'veritysetup')
    t.true((await readFromChild(path.join(runtimeDir, '0', 'hash'))).equals(await readFile(hashFile)))
  } finally {
    await fs.unmount()
    await tmp.cleanup()
  }
})

test.serial('a failing veritysetup open undoes everything and runs no cryptsetup', async (t) => {
  const tmp = await tempDir()
  const p = await plan(tmp.dir, img.image, { rootHash: separateRoot.toString('hex'), hashUrl: hashFile })
  const runtimeDir = path.join(tmp.dir, 'rt')
  const { calls, run } = recorder((c) => (c.command === 'veritysetup' ? 1 : 0))
  const err = await t.throwsAsync(mountFilesystem(p, { run, caps: dmCaps, keys: rawKeyProvider, runtimeDir, logger: silentLogger }))
  t.is((err as { code?: string }).code, 'VERITYSETUP_OPEN_FAILED')
  t.deepEqual(
    calls.map((c) => c.command),
    ['veritysetup'],
  )
  t.false((await readFile('/proc/self/mounts', 'utf8')).includes(runtimeDir), 'FUSE unmounted again')
  await t.throwsAsync(lstat(p.mountPoint))
  await tmp.cleanup()
})

test.serial('a wrong root hash is refused before any command runs', async (t) => {
  const tmp = await tempDir()
  const wrong = Buffer.from(separateRoot)
  wrong[31]! ^= 1
  const p = await plan(tmp.dir, img.image, { rootHash: wrong.toString('hex'), hashUrl: hashFile })
  const { calls, run } = recorder()
  const err = await t.throwsAsync(mountFilesystem(p, { run, caps: dmCaps, keys: rawKeyProvider, runtimeDir: path.join(tmp.dir, 'rt'), logger: silentLogger }))
  t.is((err as { code?: string }).code, 'VERITY_ROOT_MISMATCH')
  t.regex(err!.message, /does not match verity\.root_hash/)
  t.is(calls.length, 0)
  await tmp.cleanup()
})
