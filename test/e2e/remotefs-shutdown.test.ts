// What SIGTERM guarantees while applications are still reading (docs/data-path.md, "Shutdown"):
// remotefs exits 0 within the bound, readers get an error instead of hanging, and once they let
// go nothing of the run is left (no mount, loop device or FUSE connection).
import test from 'ava'
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { waitFor } from '../../src/retry/retry.js'
import { E2eFixture, holdOpen, leftovers, sidecarArgs, startSidecar, stopSidecar, waitReady } from '../helpers/e2e.js'
import { within } from '../helpers/time.js'

const e2e = new E2eFixture(test)
const MiB = 1024 * 1024
// Kubernetes' default grace period is 30 s; remotefs must be well inside it. The sanitizer run
// raises it (ENCFS_SHUTDOWN_EXIT_BOUND_MS): LeakSanitizer scans the whole heap when remotefs exits.
const EXIT_BOUND_MS = Number(process.env.ENCFS_SHUTDOWN_EXIT_BOUND_MS ?? 15_000)
// Rounds of the repeated test; ENCFS_SHUTDOWN_ROUNDS lowers it where each round is slow (the sanitizer run).
const ROUNDS = Number(process.env.ENCFS_SHUTDOWN_ROUNDS ?? 50)

/** Ends within `ms` with its exit code, or says it did not. */
async function exitWithin(exited: Promise<number | null>, ms: number, what: string): Promise<{ code: number | null; ms: number }> {
  const started = Date.now()
  const code = await within(ms, what, exited)
  return { code, ms: Date.now() - started }
}

test.serial(
  `SIGTERM while applications hold files open in two mounts: exit 0 within ${EXIT_BOUND_MS / 1000} s (one busy window for both), their next reads fail instead of hanging, nothing left once they let go`,
  async (t) => {
    const big = randomBytes(24 * MiB)
    const img = await e2e.image({ fsSizeMiB: 40, files: { 'big.bin': big } })
    const { sasUrl } = await e2e.upload(img.image, { kind: 'block' })
    const ws = await e2e.workspace()
    // The same image twice, read-only: two filesystems, each with an application holding a file.
    const mounts = ['data', 'more'].map((name) => path.join(ws.parent, name))
    const mountDirs = [0, 1].map((i) => path.join(ws.parent, `.filesystem-${i}`))
    const sidecar = await e2e.mount(
      mounts.map((mp) => ({ mount_point: mp, azure_url: sasUrl, raw_key: img.key.toString('hex') })),
      { args: ['--allow-raw-key'] },
    )
    const holders = await Promise.all(mounts.map((mp) => holdOpen(path.join(mp, 'big.bin'))))
    try {
      for (const holder of holders) {
        const first = await holder.read(0, 4096)
        t.true(first.ok && first.bytes.equals(big.subarray(0, 4096)), 'the application reads while mounted')
      }
      sidecar.child.kill('SIGTERM')
      const exit = await exitWithin(sidecar.exited, 60_000, 'remotefs to exit after SIGTERM')
      t.is(exit.code, 0, `exit status 0 (${sidecar.output()})`)
      t.true(exit.ms < EXIT_BOUND_MS, `exited after ${exit.ms} ms`)
      t.log(`remotefs exited ${exit.ms} ms after SIGTERM with a file held open in each of two mounts`)
      for (const holder of holders) {
        // Bytes the application never read are not in any cache: the read reaches the aborted FUSE connection.
        const after = await within(5000, "the application's read after SIGTERM", holder.read(20 * MiB, 4096))
        t.false(after.ok, 'the read fails')
        if (!after.ok) t.is(after.code, 'EIO')
      }
      t.is((await sidecar.log()).match(/detaching lazily/g)?.length, 2, 'both ext4 mounts were busy, so both were detached')
    } finally {
      await Promise.all(holders.map((h) => h.release()))
    }
    // The files closed, the kernel lets go of the detached ext4s, their loop devices and the FUSE files.
    const clean = await waitFor(async () => (await leftovers(sidecar.runtimeDir, mountDirs)).length === 0, { timeoutMs: 10_000, intervalMs: 100 })
    t.true(clean, (await leftovers(sidecar.runtimeDir, mountDirs)).join('\n'))
  },
)

test.serial(
  `SIGTERM while reads of the FUSE file miss the cache, ${ROUNDS} times: each exit is 0 within ${EXIT_BOUND_MS / 1000} s, readers fail instead of hanging, nothing left`,
  async (t) => {
    t.timeout(ROUNDS * 30_000 + 60_000)
    const img = await e2e.image({ fsSizeMiB: 32, files: { 'big.bin': randomBytes(20 * MiB) } })
    const { sasUrl } = await e2e.upload(img.image, { kind: 'block' })
    const ws = await e2e.workspace()
    const mp = path.join(ws.parent, 'cold')
    const mountDir = path.join(ws.parent, '.filesystem-0')
    const b64 = sidecarArgs([{ mount_point: mp, azure_url: sasUrl, raw_key: img.key.toString('hex') }])
    const slowest = { exit: 0, readers: 0 }
    for (let round = 0; round < ROUNDS; round++) {
      const runtimeDir = await mkdtemp(path.join(os.tmpdir(), 'encfs-rt-'))
      const sidecar = await startSidecar(b64, { runtimeDir, args: ['--allow-raw-key'] })
      try {
        await waitReady(sidecar, [mp])
        // Readers of the FUSE file itself (as the loop device is), each at its own place, all missing the cache.
        const data = path.join(runtimeDir, '0', 'data')
        const readers = [0, 7, 14].map((skip) => {
          const child = spawn('dd', [`if=${data}`, 'bs=256k', `skip=${skip * 4 + (round % 4)}`, 'count=64', 'iflag=direct', 'of=/dev/null', 'status=none'], { stdio: 'ignore' })
          return new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
        })
        // SIGTERM at a different moment of the reads each round.
        await sleep((round * 37) % 300)
        const started = Date.now()
        sidecar.child.kill('SIGTERM')
        const exit = await exitWithin(sidecar.exited, 60_000, `remotefs to exit (round ${round})`)
        t.is(exit.code, 0, `round ${round}: exit status (${sidecar.output().slice(-2000)})`)
        await within(EXIT_BOUND_MS, `round ${round}: the readers to end`, Promise.all(readers))
        slowest.exit = Math.max(slowest.exit, exit.ms)
        slowest.readers = Math.max(slowest.readers, Date.now() - started)
        t.false(/Assertion|Segmentation|AddressSanitizer|runtime error/.test(sidecar.output()), `round ${round}: ${sidecar.output().slice(-2000)}`)
        const left = await leftovers(runtimeDir, [mountDir])
        t.deepEqual(left, [], `round ${round}: nothing left`)
        if (left.length > 0 || exit.code !== 0) break
      } finally {
        await stopSidecar(sidecar, 'SIGKILL')
        await rm(sidecar.logFile, { force: true })
        await rm(runtimeDir, { recursive: true, force: true })
      }
    }
    t.true(slowest.exit < EXIT_BOUND_MS, `slowest exit ${slowest.exit} ms`)
    t.log(`${ROUNDS} rounds: slowest exit ${slowest.exit} ms after SIGTERM, slowest reader end ${slowest.readers} ms`)
  },
)
