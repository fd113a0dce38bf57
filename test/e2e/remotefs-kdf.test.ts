// remotefs facing a header that asks for ruinous key derivation: refused at once beyond the
// budget, and stoppable by SIGTERM within 2 s while a costly derivation runs.
import test from 'ava'
import { lstat, readFile, readdir, rm } from 'node:fs/promises'
import path from 'node:path'
import { editHeader } from '../helpers/luks-edit.js'
import { makeSmallImage, type SmallImage } from '../helpers/small-image.js'
import { E2eFixture, leftovers, waitForLog, waitUntil, type Sidecar } from '../helpers/e2e.js'

const e2e = new E2eFixture(test)

async function imageWith(dir: string, iterations: number): Promise<SmallImage> {
  const img = await makeSmallImage(dir)
  for (const c of ['primary', 'secondary'] as const)
    await editHeader(img.file, c, {
      json: (m) => {
        m.keyslots['0'].kdf.iterations = iterations
      },
    })
  return img
}

async function nothingLeft(t: import('ava').ExecutionContext, sidecar: Sidecar, parent: string, mp: string) {
  t.deepEqual(await leftovers(sidecar.runtimeDir, [path.join(parent, '.filesystem-0')]), [], 'no mounts or loop devices left')
  for (const p of [mp, path.join(parent, '.filesystem-0')]) await t.throwsAsync(lstat(p), undefined, `${p} does not exist`)
  t.deepEqual(await readdir(sidecar.runtimeDir).catch(() => []), [], 'runtime directory left empty')
  await rm(sidecar.runtimeDir, { recursive: true, force: true })
  await rm(sidecar.logFile, { force: true })
}

/** A process that exists and is not a zombie waiting to be reaped. */
async function running(pid: string): Promise<boolean> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined)
  return stat !== undefined && stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z'
}

test.serial('a header asking for 2^31-1 pbkdf2 iterations: remotefs refuses it at once, naming the keyslot, and leaves nothing', async (t) => {
  const ws = await e2e.workspace()
  const img = await imageWith(ws.dir, 2 ** 31 - 1)
  const mp = path.join(ws.parent, 'x')
  const started = Date.now()
  const sidecar = await e2e.sidecar([{ mount_point: mp, azure_url: `file://${img.file}`, raw_key: img.key.toString('hex'), unlock: 'userspace' }], { args: ['--allow-raw-key'] })
  const code = await sidecar.exited
  t.true(Date.now() - started < 20_000, `exited after ${Date.now() - started} ms`)
  t.is(code, 1)
  t.regex(sidecar.output(), /keyslot 0 asks for 2147483647 pbkdf2 iterations.*\[LUKS_KDF_BUDGET\]/)
  await nothingLeft(t, sidecar, ws.parent, mp)
})

test.serial('SIGTERM during a costly key derivation ends remotefs within 2 s, with nothing left behind', async (t) => {
  const ws = await e2e.workspace()
  // Just under a lowered budget: about 10 s of PBKDF2 here if nothing stopped it.
  const img = await imageWith(ws.dir, 29_000_000)
  const mp = path.join(ws.parent, 'x')
  const sidecar = await e2e.sidecar([{ mount_point: mp, azure_url: `file://${img.file}`, raw_key: img.key.toString('hex'), unlock: 'userspace' }], {
    args: ['--allow-raw-key', '--kdf-max-pbkdf2-iterations', '30000000'],
  })
  await waitForLog(sidecar, /trying keyslot 0/, 60_000)
  // The derivation runs in a child process of remotefs: it must go too.
  const childrenOf = async (pid: number) => (await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8')).trim().split(/\s+/).filter(Boolean)
  await waitUntil('the derivation to run in a child process', async () => (await childrenOf(sidecar.child.pid!)).length > 0, {
    exited: sidecar.exited,
    timeoutMs: 10_000,
    intervalMs: 20,
  })
  const children = await childrenOf(sidecar.child.pid!)
  t.true(children.length > 0, 'the derivation runs in a child process')
  const sent = Date.now()
  sidecar.child.kill('SIGTERM')
  const code = await sidecar.exited
  const took = Date.now() - sent
  t.true(took <= 2000, `remotefs took ${took} ms to stop`)
  t.is(code, 0)
  t.regex(await sidecar.log(), /stopped during start-up/)
  for (const pid of children) t.false(await running(pid), `child ${pid} is gone`)
  await nothingLeft(t, sidecar, ws.parent, mp)
})
