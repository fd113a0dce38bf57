import { mkdir, rmdir, symlink, unlink, lstat } from 'node:fs/promises'
import path from 'node:path'
import type { Logger } from '../log/logger.js'
import type { RangeSource } from '../storage/range-source.js'
import type { FilesystemPlan } from '../config/plan.js'
import { openSource } from '../storage/open-source.js'
import { redactUrl } from '../storage/errors.js'
import { BlockCache } from '../storage/block-cache.js'
import { SliceSource } from '../storage/slice-source.js'
import { readLuksHeader, payloadRange } from '../luks/header.js'
import { userspaceRefusal } from '../luks/cipher-policy.js'
import { Luks2Volume } from '../luks/volume.js'
import { checkAnyUnlockCost } from '../luks/volume-key.js'
import type { KdfBudget } from '../luks/kdf-budget.js'
import type { FileServer, ServedFile } from '../fuse/file-server.js'
import { mountFileServer } from '../fuse/mount-file-server.js'
import type { FuseBackend } from '../fuse/backend.js'
import type { BlobHttpClient } from '../storage/blob-http.js'
import type { KeyProvider } from '../keys/provider.js'
import { chooseMounter, chooseUnlock, logChoices, type Capabilities, type UnlockMode, type MounterMode } from './capabilities.js'
import type { CommandRunner } from '../process/run.js'
import { MountError } from './errors.js'
import { UndoStack } from './undo-stack.js'
import { attachLoop, detachLoop } from './loop.js'
import { mountExt4, mountFuse2fs, unmountFuse2fs, unmountPath } from './ext4.js'
import { cryptsetupClose, cryptsetupOpen, mapperName } from './kernel-unlock.js'
import { fuseDirOf } from './runtime-dir.js'
import { openVerity } from '../verity/open-verity.js'
import { IntactReads } from '../verity/intact-reads.js'
import type { VeritySource } from '../verity/verity-source.js'
import { veritysetupClose, veritysetupOpen, verityMapperName } from './kernel-verity.js'

export interface MountContext {
  run: CommandRunner
  caps: Capabilities
  keys: KeyProvider
  runtimeDir: string
  identity?: { client_id?: string; resource_id?: string }
  /** Read-write: how long to wait for another writer's blob lease to go (default 75 s). */
  leaseWaitMs?: number
  /** The key-derivation budget of the unlock (docs/kdf-budget.md). */
  kdfBudget?: Partial<KdfBudget>
  logger: Logger
  signal?: AbortSignal
  /** FUSE backend, chosen once per process (chooseFuseBackend); default libfuse2. */
  fuse?: FuseBackend
  /** HTTP client of blob reads, chosen once per process (chooseBlobHttp); default: env EncfsHttp, else auto. */
  http?: BlobHttpClient
}

export type FilesystemState = 'mounting' | 'mounted' | 'failed' | 'unmounting' | 'unmounted'

export interface MountedFilesystem {
  readonly index: number
  readonly mountPoint: string
  readonly unlock: 'kernel' | 'userspace'
  readonly mounter: 'loop' | 'fuse2fs'
  /** The chain under FUSE, for statistics. */
  readonly cache: BlockCache
  readonly server: FileServer
  /** Present when the image is checked against a dm-verity tree (its counters go to /status). */
  readonly verity?: VeritySource
  unmount(): Promise<void>
}

/** Checks that need no side effect, done for every filesystem before the first one is touched. */
export async function preflight(plan: FilesystemPlan): Promise<void> {
  const where = `azure_filesystems[${plan.index}].mount_point`
  const parent = await lstat(plan.parentDir).catch(() => undefined)
  if (!parent?.isDirectory()) {
    throw new MountError('MOUNT_POINT_PARENT_MISSING', `${where}: the parent directory ${plan.parentDir} does not exist; create it (in a pod: the shared emptyDir volume) before starting remotefs`)
  }
  const existing = await lstat(plan.mountPoint).catch(() => undefined)
  if (existing && !existing.isSymbolicLink()) {
    throw new MountError('MOUNT_POINT_EXISTS', `${where}: ${plan.mountPoint} already exists; remotefs creates it as a symlink when the filesystem is ready, so it must not exist (remove it)`)
  }
}

/** LUKS2 headers (two 16 KiB copies by default) and keyslot areas (about 256 KiB per 512-bit key) fit. */
const HEADER_PREFETCH = 1024 * 1024

function cacheOptions(plan: FilesystemPlan): ConstructorParameters<typeof BlockCache>[1] {
  const c = plan.cache
  return {
    ...(c?.block_size_kib ? { blockSize: c.block_size_kib * 1024 } : {}),
    ...(c?.memory_mib ? { memoryBytes: c.memory_mib * 1024 * 1024 } : {}),
    ...(c?.readahead_blocks !== undefined ? { readaheadBlocks: c.readahead_blocks } : {}),
  }
}

/**
 * Streams, unlocks and mounts one filesystem. Each step registers its undo; on any failure
 * everything done so far is undone before the error is thrown, and `unmount()` later unwinds
 * the same steps: symlink, ext4, loop / dm-crypt, FUSE, sources (which zero the volume key).
 */
export async function mountFilesystem(plan: FilesystemPlan, ctx: MountContext): Promise<MountedFilesystem> {
  const logger = ctx.logger.child({ filesystem: plan.index })
  const undo = new UndoStack(logger)
  const started = Date.now()
  const step = (msg: string, extra: Record<string, unknown> = {}) => logger.info({ ms: Date.now() - started, ...extra }, msg)
  try {
    const unlock = chooseUnlock(plan.unlock as UnlockMode, ctx.caps)
    const mounter = chooseMounter(plan.mounter as MounterMode, ctx.caps)
    logChoices(logger, plan.index, unlock, mounter)

    step('opening image', { url: redactUrl(plan.url) })
    const rw = plan.readWrite
    const source = await openSource(plan.url, {
      private: plan.private, identity: ctx.identity, logger, signal: ctx.signal, http: ctx.http,
      // The lease id lives next to the FUSE directories, so a restart after a crash takes its lease back.
      ...(rw ? { writable: { leaseIdFile: path.join(ctx.runtimeDir, `${plan.index}.lease`), leaseWaitMs: ctx.leaseWaitMs } } : {}),
    })
    let outer: RangeSource = source
    undo.push('close image source', () => outer.close())
    // dm-verity sits below the cache: blocks are verified as they are fetched, so nothing
    // unverified is cached, decrypted or served (docs/dm-verity.md).
    const verity = plan.verity ? await openVerity(source, plan.verity, { private: plan.private, identity: ctx.identity, logger, signal: ctx.signal }) : undefined
    if (verity) outer = verity
    const cache = new BlockCache(verity ?? source, { ...cacheOptions(plan), logger })
    outer = cache
    const image: RangeSource = verity ? new IntactReads(cache, verity) : cache
    step('image opened', { bytes: source.size, kind: source.kind, blobType: source.blobType, ...(verity ? { verifiedBytes: verity.size } : {}) })

    // One ranged GET for the LUKS2 header and keyslot area instead of a round trip per read the
    // header parser makes (the cache fetches small reads at their size).
    await cache.load(0, Math.min(cache.size, HEADER_PREFETCH))
    // The header comes from storage that an attacker may control: validate it before either path uses it.
    const header = await readLuksHeader(image, { logger })
    payloadRange(header, image.size)
    // Before any key is released: an image only cryptsetup can open says so now.
    if (unlock.mode === 'userspace' && header.userspaceProblem) throw userspaceRefusal(header.userspaceProblem)
    // cryptsetup will derive the keys, trying every keyslot: refuse a header that asks it to work for minutes.
    if (unlock.mode === 'kernel') checkAnyUnlockCost(header, image.size, { budget: ctx.kdfBudget })
    step(`LUKS${header.version} header validated`, { cipher: header.segment.encryption, sectorSize: header.segment.sectorSize, ...(header.version === 2 ? { copy: header.copy } : {}) })

    const key = await ctx.keys.keyFor(plan.key, { index: plan.index, logger, signal: ctx.signal })
    const files: ServedFile[] = []
    try {
      if (unlock.mode === 'userspace') {
        const volume = await Luks2Volume.open(image, key, { logger, signal: ctx.signal, budget: ctx.kdfBudget })
        outer = volume
        files.push({ name: 'data', source: volume, writable: rw })
        step('keyslot unlocked in userspace', { payloadBytes: volume.size })
      } else {
        files.push({ name: 'data', source: image, writable: rw })
        files.push({ name: 'header', source: new SliceSource(image, 0, header.segment.offset), writable: false })
        if (verity) files.push({ name: 'hash', source: verity.hashArea(), writable: false })
      }

      const fuseDir = fuseDirOf(ctx.runtimeDir, plan.index)
      const server = await mountFileServer({ mountpoint: fuseDir, files, logger, backend: ctx.fuse ?? 'libfuse2' })
      undo.push('unmount FUSE', async () => {
        if (rw) {
          // ext4 and the loop device are gone by now: what is dirty here is all that is left to save.
          const before = cache.stats()
          await outer.flush!()
          const after = cache.stats()
          logger.warn({ bytes: after.bytesWritten - before.bytesWritten, blocks: after.writeBacks - before.writeBacks, totalBytesWritten: after.bytesWritten }, `flushed ${after.bytesWritten - before.bytesWritten} bytes to storage before unmounting`)
        }
        logger.info({ fuse: server.stats(), cache: cache.stats() }, 'I/O statistics')
        await server.unmount()
        await rmdir(fuseDir).catch(() => {})
      })
      step('FUSE file served', { path: server.pathOf('data'), backend: server.backend })

      let device: string
      if (unlock.mode === 'kernel') {
        const name = mapperName(plan.index)
        let ciphertext = server.pathOf('data')
        if (verity) {
          const verityName = verityMapperName(plan.index)
          ciphertext = await veritysetupOpen(ctx.run, { dataFile: ciphertext, hashFile: server.pathOf('hash'), name: verityName, rootHash: plan.verity!.rootHash, logger })
          undo.push('close dm-verity mapping', () => veritysetupClose(ctx.run, verityName))
        }
        device = await cryptsetupOpen(ctx.run, { dataFile: ciphertext, headerFile: server.pathOf('header'), name, readOnly: !rw, key, logger, type: header.version === 1 ? 'luks1' : 'luks2' })
        undo.push('close dm-crypt mapping', () => cryptsetupClose(ctx.run, name))
        step('dm-crypt mapping opened', { device })
      } else {
        device = server.pathOf('data')
      }
      key.fill(0)

      const created = await mkdir(plan.mountDir, { mode: 0o755 }).then(() => true, (err: NodeJS.ErrnoException) => {
        if (err.code === 'EEXIST') return false
        throw new MountError('MOUNT_DIR_FAILED', `cannot create ${plan.mountDir}: ${err.message}`, { cause: err })
      })
      if (created) undo.push('remove mount directory', () => rmdir(plan.mountDir))

      if (mounter.mode === 'loop') {
        if (unlock.mode === 'userspace') {
          // The libfuse3 data plane answers O_DIRECT reads from its threads at once; measured in
          // bench/: random 4 KiB 0.61x -> 1.09x raw GETs, cold sequential 0.33x -> 0.43x raw.
          const loop = await attachLoop(ctx.run, device, !rw, { directIo: server.backend === 'libfuse3' })
          undo.push('detach loop device', () => detachLoop(ctx.run, loop))
          step('loop device attached', { loop })
          device = loop
        }
        await mountExt4(ctx.run, device, plan.mountDir, !rw)
        undo.push('unmount ext4', () => unmountPath(ctx.run, plan.mountDir, logger))
      } else {
        const m = await mountFuse2fs(device, plan.mountDir, !rw, logger)
        undo.push('unmount fuse2fs', () => unmountFuse2fs(ctx.run, m, logger))
      }
      step('ext4 mounted', { at: plan.mountDir, readWrite: rw })

      // Last: the path appears only once the filesystem behind it is ready.
      await symlink(plan.symlinkTarget, plan.mountPoint)
      undo.push('remove mount point symlink', () => unlink(plan.mountPoint))
      // The cache counters here are what mounting cost; the bench subtracts them.
      step('filesystem ready', { mountPoint: plan.mountPoint, cache: cache.stats() })

      const mounted: MountedFilesystem = {
        index: plan.index,
        mountPoint: plan.mountPoint,
        unlock: unlock.mode,
        mounter: mounter.mode,
        cache,
        server,
        ...(verity ? { verity } : {}),
        async unmount() {
          logger.info({ mountPoint: plan.mountPoint }, 'unmounting')
          const failures = await undo.unwind()
          if (failures.length > 0) {
            throw new MountError('UNMOUNT_FAILED', `filesystem ${plan.index} (${plan.mountPoint}): ${failures.length} cleanup step(s) failed: ${failures.map((f) => f.message).join('; ')}`)
          }
          logger.info({ mountPoint: plan.mountPoint }, 'unmounted')
        },
      }
      return mounted
    } finally {
      key.fill(0)
    }
  } catch (err) {
    logger.error({ err }, 'mount failed; undoing what was done')
    await undo.unwind()
    throw err
  }
}
