// Crash recovery touches only what an earlier run of remotefs left: its own ext4 mounts (over a
// loop device backed by its runtime directory), never a filesystem someone else mounted at
// .filesystem-N; and it leaves no empty .filesystem-N directory behind.
import test from 'ava'
import { mkdir, mkdtemp, rm, stat, symlink, writeFile, truncate, lstat, readFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { pino } from 'pino'
import { clearStale } from '../../src/mount/stale.js'
import { runCommand } from '../../src/process/run.js'
import { isMounted } from '../../src/mount/proc-mounts.js'
import { listLoops } from '../../src/mount/loop.js'

const logger = pino({ level: 'silent' })

async function workspace(t: import('ava').ExecutionContext) {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'encfs-stale-'))
  const runtimeDir = path.join(dir, 'rt')
  const parent = path.join(dir, 'mnt')
  await mkdir(runtimeDir)
  await mkdir(parent)
  t.teardown(async () => {
    for (const target of [path.join(parent, '.filesystem-0'), path.join(runtimeDir, '0')])
      if (await isMounted(target)) await runCommand('umount', ['--lazy', target]).catch(() => {})
    for (const l of await listLoops(runCommand)) if (l.backingFile.startsWith(dir)) await runCommand('losetup', ['--detach', l.name]).catch(() => {})
    await rm(dir, { recursive: true, force: true })
  })
  const target = { index: 0, mountPoint: path.join(parent, 'share'), mountDir: path.join(parent, '.filesystem-0') }
  return { dir, runtimeDir, parent, target }
}

test.serial('an empty .filesystem-N left by a crash is removed, with its stale symlink', async (t) => {
  const w = await workspace(t)
  await mkdir(w.target.mountDir)
  await symlink('.filesystem-0', w.target.mountPoint)
  await clearStale(runCommand, w.runtimeDir, [w.target], logger)
  await t.throwsAsync(lstat(w.target.mountDir), { code: 'ENOENT' })
  await t.throwsAsync(lstat(w.target.mountPoint), { code: 'ENOENT' })
})

test.serial('our stale ext4 (a loop device backed by a file on a mount in the runtime directory) is unmounted, detached and its directory removed', async (t) => {
  const w = await workspace(t)
  const data = path.join(w.runtimeDir, '0', 'data')
  await mkdir(path.dirname(data))
  // A tmpfs stands for the dead FUSE mount a crash leaves at <runtime dir>/0.
  await runCommand('mount', ['-t', 'tmpfs', '-o', 'size=16m', 'encfs-stale-test', path.dirname(data)])
  await writeFile(data, '')
  await truncate(data, 8 * 1024 * 1024)
  await runCommand('mkfs.ext4', ['-q', data])
  const { stdout } = await runCommand('losetup', ['--find', '--show', data])
  await mkdir(w.target.mountDir)
  await runCommand('mount', ['-t', 'ext4', stdout.trim(), w.target.mountDir])
  const cleared = await clearStale(runCommand, w.runtimeDir, [w.target], logger)
  t.true(cleared >= 2)
  t.false(await isMounted(w.target.mountDir))
  t.false(
    (await listLoops(runCommand)).some((l) => l.backingFile === data),
    'loop device detached',
  )
  await t.throwsAsync(lstat(w.target.mountDir), { code: 'ENOENT' })
})

test.serial('a filesystem someone else mounted at .filesystem-N is left alone, and start-up is refused', async (t) => {
  const w = await workspace(t)
  await mkdir(w.target.mountDir)
  await runCommand('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'not-ours', w.target.mountDir])
  await writeFile(path.join(w.target.mountDir, 'theirs.txt'), 'keep me')
  const err = await t.throwsAsync(clearStale(runCommand, w.runtimeDir, [w.target], logger))
  t.is((err as { code?: string }).code, 'MOUNT_DIR_FOREIGN')
  t.regex(err!.message, /\.filesystem-0/)
  t.regex(err!.message, /tmpfs/)
  t.true(await isMounted(w.target.mountDir), 'still mounted')
  t.true((await stat(path.join(w.target.mountDir, 'theirs.txt'))).isFile())
})

test.serial("another mount namespace's loop device whose backing path starts with the same runtime directory is left alone", async (t) => {
  const w = await workspace(t)
  const dir = path.join(w.runtimeDir, '0')
  await mkdir(dir)
  const printed = path.join(w.dir, 'other-loop')
  // Another pod: its own mount namespace and the same (default) runtime path, a loop device over a file there. Its path is
  // the same string as ours would be; the file is not on anything mounted in our runtime directory.
  await runCommand('unshare', ['-m', '--propagation', 'private', 'sh', '-c', `truncate -s 8M ${dir}/data && losetup --find --show ${dir}/data > ${printed}`])
  const device = (await readFile(printed, 'utf8')).trim()
  t.teardown(() => runCommand('losetup', ['--detach', device]).catch(() => {}))
  const other = (await listLoops(runCommand)).find((l) => l.name === device)
  t.is(other?.backingFile, path.join(dir, 'data'), 'its backing file names our runtime directory')
  await clearStale(runCommand, w.runtimeDir, [w.target], logger)
  t.true(
    (await listLoops(runCommand)).some((l) => l.name === device),
    "the other pod's loop device is still attached",
  )
  const { stdout } = await runCommand('losetup', ['--list', '--noheadings', '--output', 'AUTOCLEAR', device])
  t.is(stdout.trim(), '0', 'and not switched to auto-detach')
})
