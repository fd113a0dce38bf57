// Crash recovery touches only what an earlier run of remotefs left: its own ext4 mounts (over a
// loop device backed by its runtime directory), never a filesystem someone else mounted at
// .filesystem-N; and it leaves no empty .filesystem-N directory behind.
import test from 'ava'
import { mkdir, mkdtemp, rm, stat, symlink, writeFile, truncate, lstat } from 'node:fs/promises'
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
    for (const target of [path.join(parent, '.filesystem-0')]) if (await isMounted(target)) await runCommand('umount', ['--lazy', target]).catch(() => {})
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

test.serial('our stale ext4 (a loop device backed by the runtime directory) is unmounted, detached and its directory removed', async (t) => {
  const w = await workspace(t)
  const data = path.join(w.runtimeDir, '0', 'data')
  await mkdir(path.dirname(data))
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
