// A filesystem that fails at start-up is named in the error, and the error stays what it was:
// its class, its code and its cause, not a MountError wrapped around everything.
import test from 'ava'
import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { pino } from 'pino'
import { startRemotefs } from '../../src/mount/remotefs.js'
import { rawKeyProvider } from '../../src/keys/provider.js'
import { StorageError } from '../../src/storage/errors.js'
import type { FilesystemPlan } from '../../src/config/plan.js'
import type { CommandRunner } from '../../src/process/run.js'

test('a start-up failure keeps its class and code, with the filesystem in its message', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'encfs-startup-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const parent = path.join(dir, 'mnt')
  await mkdir(parent)
  const plan: FilesystemPlan = {
    index: 0,
    mountPoint: path.join(parent, 'share'),
    parentDir: parent,
    mountDir: path.join(parent, '.filesystem-0'),
    symlinkTarget: '.filesystem-0',
    url: path.join(dir, 'missing.img'),
    private: false,
    readWrite: false,
    unlock: 'userspace',
    mounter: 'auto',
    key: { kind: 'raw', hex: 'ab'.repeat(32) },
  }
  const commands: string[] = []
  const run: CommandRunner = async (command, args) => {
    commands.push([command, ...args].join(' '))
    return { stdout: '', stderr: '', code: 0 }
  }
  const err = await t.throwsAsync(
    startRemotefs({
      plans: [plan],
      keys: rawKeyProvider,
      runtimeDir: path.join(dir, 'rt'),
      logger: pino({ level: 'silent' }),
      run,
      caps: { fuse: true, loop: true, fuse2fs: true, deviceMapper: false, cryptsetup: false },
    }),
    { instanceOf: StorageError },
  )
  t.is(err?.code, 'STORAGE_NOT_FOUND')
  t.regex(String(err?.message), new RegExp(`^filesystem 0 \\(${plan.mountPoint}\\): image file .*missing\\.img does not exist`))
  t.deepEqual((err as StorageError).context, [`filesystem 0 (${plan.mountPoint})`])
  t.deepEqual(await readdir(parent), [], 'nothing left behind')
})
