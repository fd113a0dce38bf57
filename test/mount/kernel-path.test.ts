import test from 'ava'
import path from 'node:path'
import { mkdir, readlink } from 'node:fs/promises'
import { createHash } from 'node:crypto'
import { mountFilesystem } from '../../src/mount/mount-filesystem.js'
import { mapperName } from '../../src/mount/kernel-unlock.js'
import type { CommandRunner, CommandOptions } from '../../src/process/run.js'
import type { Capabilities } from '../../src/mount/capabilities.js'
import { rawKeyProvider } from '../../src/keys/provider.js'
import { silentLogger } from '../../src/log/logger.js'
import { LuksError } from '../../src/luks/errors.js'
import type { FilesystemPlan } from '../../src/config/plan.js'
import { makeEncryptedImage, type TestImage } from '../helpers/images.js'
import { readFromChild } from '../helpers/remotefs.js'
import { tempDir } from '../helpers/temp.js'

// device-mapper does not exist on the development machine: the kernel path is checked up to the
// exact commands it runs, with a runner that records them and plays cryptsetup / mount.
const dmCaps: Capabilities = { deviceMapper: true, cryptsetup: true, loop: true, fuse2fs: true, fuse: true }

interface Call {
  command: string
  args: string[]
  input?: Buffer
}

function recorder(answer: (c: Call) => { code: number; stderr?: string }) {
  const calls: Call[] = []
  const run: CommandRunner = async (command: string, args: string[], options?: CommandOptions) => {
    const call = { command, args, input: options?.input ? Buffer.from(options.input) : undefined }
    calls.push(call)
    const { code, stderr = '' } = answer(call)
    if (code !== 0) throw Object.assign(new Error(`${command} failed: ${stderr}`), { result: { stdout: '', stderr, code } })
    return { stdout: '', stderr: '', code }
  }
  return { calls, run }
}

let img: TestImage
test.before(async () => {
  img = await makeEncryptedImage({ files: { 'k.txt': 'kernel\n' } })
})
test.after.always(async () => {
  await img?.cleanup()
})

async function plan(dir: string, index = 0): Promise<FilesystemPlan> {
  const parentDir = path.join(dir, 'mnt')
  await mkdir(parentDir, { recursive: true })
  return {
    index,
    mountPoint: path.join(parentDir, 'share'),
    parentDir,
    mountDir: path.join(parentDir, `.filesystem-${index}`),
    symlinkTarget: `.filesystem-${index}`,
    url: img.image,
    private: false,
    readWrite: false,
    unlock: 'kernel',
    mounter: 'loop',
    key: { kind: 'raw', hex: img.key.toString('hex') },
  } as FilesystemPlan
}

test.serial('kernel unlock runs cryptsetup open with the key on stdin, then mounts the mapping read-only', async (t) => {
  const tmp = await tempDir()
  const p = await plan(tmp.dir)
  const runtimeDir = path.join(tmp.dir, 'rt')
  const { calls, run } = recorder(() => ({ code: 0 }))
  const fs = await mountFilesystem(p, { run, caps: dmCaps, keys: rawKeyProvider, runtimeDir, logger: silentLogger })
  try {
    const name = mapperName(0)
    t.is(name, 'remote-crypt-0')
    t.deepEqual(calls[0]?.command, 'cryptsetup')
    t.deepEqual(calls[0]?.args, ['open', '--type', 'luks2', '--key-file=-', '--readonly', path.join(runtimeDir, '0', 'data'), name])
    t.deepEqual(calls[0]?.input, img.key, 'the key goes to cryptsetup on stdin, byte for byte')
    t.deepEqual(calls[1], { command: 'mount', args: ['-t', 'ext4', '-o', 'ro,noload', `/dev/mapper/${name}`, p.mountDir], input: undefined })
    t.is(calls.length, 2)
    t.is(await readlink(p.mountPoint), '.filesystem-0')
    // The FUSE file carries the ciphertext: the image itself, byte for byte.
    const served = await readFromChild(path.join(runtimeDir, '0', 'data'))
    const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex')
    const { readFile } = await import('node:fs/promises')
    t.is(sha(served), sha(await readFile(img.image)))
  } finally {
    await fs.unmount()
    await tmp.cleanup()
  }
  t.deepEqual(calls.at(-1), { command: 'cryptsetup', args: ['close', 'remote-crypt-0'], input: undefined }, 'teardown closes the mapping')
})

test.serial('when the attached header cannot be used, cryptsetup is retried with the detached header served by FUSE', async (t) => {
  const tmp = await tempDir()
  const p = await plan(tmp.dir)
  const runtimeDir = path.join(tmp.dir, 'rt')
  let opens = 0
  const { calls, run } = recorder((c) => (c.command === 'cryptsetup' && c.args[0] === 'open' && opens++ === 0 ? { code: 1, stderr: 'Device is read-only' } : { code: 0 }))
  const fs = await mountFilesystem(p, { run, caps: dmCaps, keys: rawKeyProvider, runtimeDir, logger: silentLogger })
  try {
    const header = path.join(runtimeDir, '0', 'header')
    t.deepEqual(calls[1]?.args, ['open', '--type', 'luks2', '--key-file=-', '--readonly', '--header', header, path.join(runtimeDir, '0', 'data'), 'remote-crypt-0'])
    t.deepEqual(calls[1]?.input, img.key)
    const served = await readFromChild(header)
    const { readFile } = await import('node:fs/promises')
    const image = await readFile(img.image)
    t.is(served.length, img.payloadOffset, 'the header file is everything before the data segment')
    t.deepEqual(served, image.subarray(0, img.payloadOffset))
  } finally {
    await fs.unmount()
    await tmp.cleanup()
  }
})

test.serial('cryptsetup refusing the key (exit 2) is reported as a wrong key, and nothing is left mounted', async (t) => {
  const tmp = await tempDir()
  const p = await plan(tmp.dir)
  const runtimeDir = path.join(tmp.dir, 'rt')
  const { calls, run } = recorder((c) => (c.command === 'cryptsetup' ? { code: 2, stderr: 'No key available with this passphrase.' } : { code: 0 }))
  const err = await t.throwsAsync(mountFilesystem(p, { run, caps: dmCaps, keys: rawKeyProvider, runtimeDir, logger: silentLogger }))
  t.is((err as { code?: string }).code, 'LUKS_WRONG_KEY')
  t.true(err instanceof LuksError, 'the class the userspace unlock uses for the same failure')
  t.is(calls.filter((c) => c.command === 'mount').length, 0)
  const { readFile, lstat } = await import('node:fs/promises')
  t.false((await readFile('/proc/self/mounts', 'utf8')).includes(runtimeDir), 'FUSE unmounted again')
  await t.throwsAsync(lstat(p.mountPoint))
  await tmp.cleanup()
})

test.serial('the kernel path validates the header before cryptsetup sees the image', async (t) => {
  const tmp = await tempDir()
  const p = { ...(await plan(tmp.dir)), url: `file://${img.plain}` } // a plain ext4: no LUKS header
  const { calls, run } = recorder(() => ({ code: 0 }))
  const err = await t.throwsAsync(mountFilesystem(p, { run, caps: dmCaps, keys: rawKeyProvider, runtimeDir: path.join(tmp.dir, 'rt'), logger: silentLogger }))
  t.is((err as { code?: string }).code, 'LUKS_NOT_LUKS')
  t.is(calls.length, 0, 'cryptsetup never ran')
  await tmp.cleanup()
})

test.serial('a LUKS1 image goes to cryptsetup as it is (--type luks1); one only cryptsetup can open is refused by userspace with the mode that can', async (t) => {
  const tmp = await tempDir()
  const { execFile } = await import('node:child_process')
  const { copyFile, open } = await import('node:fs/promises')
  const luks1 = path.join(tmp.dir, 'luks1.img')
  await copyFile(img.image, luks1)
  await new Promise<void>((resolve, reject) =>
    execFile('cryptsetup', ['luksFormat', '--type', 'luks1', '-q', '--pbkdf-force-iterations', '1000', '--key-file', img.keyFile, luks1], (err) => (err ? reject(err) : resolve())),
  )
  const runtimeDir = path.join(tmp.dir, 'rt')
  const p = { ...(await plan(tmp.dir)), url: `file://${luks1}` }
  const { calls, run } = recorder(() => ({ code: 0 }))
  const fs = await mountFilesystem(p, { run, caps: dmCaps, keys: rawKeyProvider, runtimeDir, logger: silentLogger })
  await fs.unmount()
  t.deepEqual(calls[0]?.args, ['open', '--type', 'luks1', '--key-file=-', '--readonly', path.join(runtimeDir, '0', 'data'), 'remote-crypt-0'])

  // serpent: sound, but not in encfs's own decryption. Kernel: handed over; userspace: refused before any key is fetched.
  const fh = await open(luks1, 'r+')
  await fh.write(Buffer.from('serpent\0'), 0, 8, 8)
  await fh.close()
  const kernel = recorder(() => ({ code: 0 }))
  await (await mountFilesystem(p, { run: kernel.run, caps: dmCaps, keys: rawKeyProvider, runtimeDir, logger: silentLogger })).unmount()
  t.is(kernel.calls[0]?.args[2], 'luks1')
  let keysAsked = 0
  const counting = {
    keyFor: async (...a: Parameters<typeof rawKeyProvider.keyFor>) => {
      keysAsked++
      return rawKeyProvider.keyFor(...a)
    },
  }
  const err = await t.throwsAsync(
    mountFilesystem({ ...p, unlock: 'userspace' }, { run: recorder(() => ({ code: 0 })).run, caps: dmCaps, keys: counting, runtimeDir, logger: silentLogger }),
  )
  t.is((err as { code?: string }).code, 'LUKS_USERSPACE_UNSUPPORTED')
  t.regex(err!.message, /--unlock kernel/)
  t.is(keysAsked, 0)
  await tmp.cleanup()
})

test.serial('the kernel path refuses a header that would make cryptsetup work for minutes, before cryptsetup runs', async (t) => {
  const tmp = await tempDir()
  const { copyFile } = await import('node:fs/promises')
  const { editHeader } = await import('../helpers/luks-edit.js')
  const hostile = path.join(tmp.dir, 'hostile.img')
  await copyFile(img.image, hostile)
  for (const c of ['primary', 'secondary'] as const)
    await editHeader(hostile, c, {
      json: (m) => {
        m.keyslots['0'].kdf.iterations = 2 ** 31 - 1
      },
    })
  const p = { ...(await plan(tmp.dir)), url: hostile }
  const { calls, run } = recorder(() => ({ code: 0 }))
  const err = await t.throwsAsync(mountFilesystem(p, { run, caps: dmCaps, keys: rawKeyProvider, runtimeDir: path.join(tmp.dir, 'rt'), logger: silentLogger }))
  t.is((err as { code?: string }).code, 'LUKS_KDF_BUDGET')
  t.regex(err!.message, /keyslot 0 asks for 2147483647 pbkdf2 iterations/)
  t.is(calls.filter((c) => c.command === 'cryptsetup').length, 0, 'cryptsetup never ran')
  await tmp.cleanup()
})
