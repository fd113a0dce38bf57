import { withContext } from '../errors/encfs-error.js'
import type { FilesystemPlan } from '../config/plan.js'
import type { KeyProvider } from '../keys/provider.js'
import { probeCapabilities, type Capabilities } from './capabilities.js'
import { runCommand, type CommandRunner } from '../process/run.js'
import { clearStale } from './stale.js'
import { claimRuntimeDir } from './runtime-dir.js'
import { mountFilesystem, preflight, type MountedFilesystem, type MountSettings } from './mount-filesystem.js'
import { MountError } from './errors.js'
import type { FilesystemState, StateDetail } from '../api/status.js'
import { chooseFuseBackend, type FuseBackendMode } from '../fuse/backend.js'
import { chooseBlobHttp, type BlobHttpMode } from '../storage/blob-http.js'

export interface RemotefsOptions extends MountSettings {
  plans: FilesystemPlan[]
  keys: KeyProvider
  runtimeDir: string
  run?: CommandRunner
  caps?: Capabilities
  /** FUSE backend: auto (libfuse3 addon when it loads, else fuse-native), libfuse3 or libfuse2. */
  fuse?: FuseBackendMode
  /** HTTP client of blob reads: auto (libcurl addon when it loads, else the SDK's pipeline), native or node. */
  http?: BlobHttpMode
  /** Told of every filesystem's state as it changes (the API's /status). */
  /** Every state but `pending`, which is a filesystem's before remotefs starts on it. */
  onState?: (index: number, state: Exclude<FilesystemState, 'pending'>, detail?: StateDetail) => void
}

export interface Remotefs {
  readonly filesystems: readonly MountedFilesystem[]
  /** Unmounts everything in reverse order; resolves when nothing is left. */
  stop(): Promise<void>
}

/**
 * Mounts every configured filesystem in order. One failure undoes the ones already mounted and
 * rejects with an error naming the filesystem that failed.
 */
export async function startRemotefs(o: RemotefsOptions): Promise<Remotefs> {
  const run = o.run ?? runCommand
  const logger = o.logger
  for (const plan of o.plans) await preflight(plan)
  const caps = o.caps ?? (await probeCapabilities())
  if (!caps.fuse) throw new MountError('FUSE_UNAVAILABLE', '/dev/fuse is missing: run remotefs privileged or with --device /dev/fuse')
  logger.info({ caps }, 'platform capabilities')
  const fuse = chooseFuseBackend(o.fuse ?? 'auto')
  logger.info({ backend: fuse.backend, reason: fuse.reason }, `FUSE backend ${fuse.backend} (${fuse.reason})`)
  const http = chooseBlobHttp(o.http ?? 'auto')
  logger.info({ http: http.client, reason: http.reason }, `blob reads over ${http.client === 'native' ? 'libcurl' : 'the Node.js SDK pipeline'} (${http.reason})`)

  const claim = await claimRuntimeDir(o.runtimeDir)
  const mounted: MountedFilesystem[] = []
  const stopAll = async (): Promise<Error[]> => {
    const failures: Error[] = []
    // Every filesystem's storage I/O ends first, so that none waits for a stalled server while another unmounts.
    for (const fs of mounted) fs.abortIo()
    while (mounted.length > 0) {
      const fs = mounted.pop()!
      o.onState?.(fs.index, 'unmounting')
      await fs.unmount().then(
        () => o.onState?.(fs.index, 'unmounted'),
        (err: Error) => {
          failures.push(err)
          o.onState?.(fs.index, 'failed', { reason: err.message })
        },
      )
    }
    await claim.release()
    return failures
  }
  try {
    await clearStale(
      run,
      o.runtimeDir,
      o.plans.map((p) => ({ index: p.index, mountPoint: p.mountPoint, mountDir: p.mountDir })),
      logger,
    )
    for (const plan of o.plans) {
      try {
        o.onState?.(plan.index, 'mounting')
        logger.info(`Mounting Azure Storage blob ${plan.index}...`)
        const { identity, leaseWaitMs, kdfBudget, signal } = o
        const fs = await mountFilesystem(plan, {
          run,
          caps,
          keys: o.keys,
          runtimeDir: o.runtimeDir,
          identity,
          leaseWaitMs,
          kdfBudget,
          logger,
          signal,
          fuse: fuse.backend,
          http: http.client,
        })
        mounted.push(fs)
        const verity = fs.verity
        o.onState?.(plan.index, 'mounted', {
          unlock: fs.unlock,
          mounter: fs.mounter,
          ...(verity ? { verity: () => verity.stats() } : {}),
          ...(fs.lease ? { lease: fs.lease } : {}),
          memory: () => fs.memory(),
        })
      } catch (err) {
        const e = err as Error & { code?: string }
        o.onState?.(plan.index, 'failed', { reason: e.message })
        throw withContext(err, `filesystem ${plan.index} (${plan.mountPoint})`)
      }
    }
  } catch (err) {
    if (mounted.length > 0) logger.warn({ count: mounted.length }, 'start-up failed; unmounting the filesystems already mounted')
    await stopAll()
    throw err
  }
  let stopping: Promise<void> | undefined
  return {
    filesystems: mounted.slice(),
    stop() {
      stopping ??= stopAll().then((failures) => {
        if (failures.length > 0) throw new MountError('STOP_FAILED', failures.map((f) => f.message).join('; '))
      })
      return stopping
    },
  }
}
