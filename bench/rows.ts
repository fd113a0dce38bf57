// One function per bench row: each measures once and returns its rate (and what it saw on the way).
import type { PageBlobClient } from '@azure/storage-blob'
import { mkdir, open, rm } from 'node:fs/promises'
import path from 'node:path'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { BlobSource } from '../src/storage/blob-source.js'
import { NativePagePut } from '../src/storage/native-page-put.js'
import { blobSas } from '../src/demo/azurite.js'
import type { BlobHttpClient } from '../src/storage/blob-http.js'
import { BlockCache } from '../src/cache/block-cache.js'
import { LuksVolume } from '../src/luks/volume.js'
import { MiB, ddRead, dropCaches, iosWithin, mbps, peakRssMiB, processCpuSeconds, rssMiB, runFio, type FioJob } from './harness.js'
import { rawRandom4k } from './raw-clients.js'
import { startRclone, startRemotefs, type CacheCounters, type FuseCounters, type RemotefsRun } from './mounts.js'
import type { Scenario } from './scenario.js'

const exec = promisify(execFile)

/** BlobSource + BlockCache + LuksVolume in this process (no FUSE): 1 MiB reads, 4 in flight, as the kernel asks. */
export async function inProcess(url: string, key: Buffer, bytes: number, http: BlobHttpClient): Promise<{ mbps: number; cpuPerGB: number }> {
  const source = await BlobSource.open({ url, http })
  const volume = await LuksVolume.open(new BlockCache(source), key)
  try {
    const cpu0 = process.cpuUsage()
    const started = performance.now()
    let next = 0
    const reader = async () => {
      while (next < bytes) {
        const off = next
        next += MiB
        await volume.read(off, Math.min(MiB, bytes - off))
      }
    }
    await Promise.all(Array.from({ length: 4 }, reader))
    const ms = performance.now() - started
    const cpu = process.cpuUsage(cpu0)
    return { mbps: mbps(bytes, ms), cpuPerGB: (cpu.user + cpu.system) / 1e6 / (bytes / 1e9) }
  } finally {
    await volume.close()
  }
}

let mountSeq = 0
async function mountParent(scn: Scenario): Promise<string> {
  const parent = path.join(scn.dir, `m${mountSeq++}`)
  await mkdir(parent)
  return parent
}

/** Switches the loop device under a mount to buffered I/O (remotefs attaches it with direct I/O over libfuse3). */
async function loopBuffered(run: RemotefsRun): Promise<void> {
  const { stdout } = await exec('losetup', ['--list', '--noheadings', '--output', 'NAME,BACK-FILE'])
  const line = stdout.split('\n').find((l) => l.includes(run.sidecar.runtimeDir))
  if (!line) throw new Error(`no loop device over ${run.dataFile}`)
  await exec('losetup', ['--direct-io=off', line.trim().split(/\s+/)[0]!])
}

async function withMount<T>(
  scn: Scenario,
  o: { backend?: string; readWrite?: boolean; loopBuffered?: boolean; http?: BlobHttpClient },
  f: (run: RemotefsRun) => Promise<T>,
): Promise<{ value: T; run: RemotefsRun; atEnd?: CacheCounters; fuse?: FuseCounters; backend?: string }> {
  const parent = await mountParent(scn)
  const run = await startRemotefs({
    url: o.readWrite ? scn.pageUrl : scn.blockUrl,
    key: scn.image.key,
    parent,
    name: 'fs',
    readWrite: o.readWrite,
    backend: o.backend,
    http: o.http,
  })
  let value: T
  try {
    if (o.loopBuffered) await loopBuffered(run)
    value = await f(run)
  } catch (err) {
    await run.stop().catch(() => {})
    throw err
  }
  const end = await run.stop()
  await rm(parent, { recursive: true, force: true })
  return { value, run, ...end }
}

export interface MountedSeq {
  mbps: number
  /** remotefs CPU seconds per GB served. */
  cpuPerGB: number
  peakRssMiB: number
  /** Resident set once mounted, before the read: Node.js, the SDK, the header and ext4's first blocks. */
  idleRssMiB: number
  startMs: number
  kdfMs: number
  backend?: string
  /** Bytes remotefs fetched from storage per byte dd read: readahead past the file's end, which the cache cannot see, is what exceeds 1. */
  fetchedPerByte: number
}

/** Cold sequential read of big.bin inside a fresh mount (page cache dropped), by dd in a child. */
export async function mountedSequential(scn: Scenario, backend?: string, loopBuffered = false, http?: BlobHttpClient): Promise<MountedSeq> {
  const r = await withMount(scn, { backend, loopBuffered, http }, async (run) => {
    await dropCaches([scn.az.location])
    const idleRssMiB = await rssMiB(run.pid)
    const cpu0 = await processCpuSeconds(run.pid)
    const ms = await ddRead(path.join(run.mountPoint, 'big.bin'))
    const cpu = (await processCpuSeconds(run.pid)) - cpu0
    const bytes = scn.sizes.bigMiB * MiB
    return { mbps: mbps(bytes, ms), cpuPerGB: cpu / (bytes / 1e9), peakRssMiB: await peakRssMiB(run.pid), idleRssMiB }
  })
  const fetched = (r.atEnd?.bytesFetched ?? Number.NaN) - (r.run.atReady?.bytesFetched ?? 0)
  return { ...r.value, startMs: r.run.startMs, kdfMs: r.run.kdfMs, fetchedPerByte: fetched / (scn.sizes.bigMiB * MiB), ...(r.backend ? { backend: r.backend } : {}) }
}

/** Cold `dd bs=1M` of the FUSE data file itself (no loop, no ext4), as much as big.bin holds. */
export async function fuseFileRead(scn: Scenario, backend?: string, http?: BlobHttpClient): Promise<number> {
  const r = await withMount(scn, { backend, http }, async (run) => {
    await dropCaches([scn.az.location])
    return mbps(scn.sizes.bigMiB * MiB, await ddRead(run.dataFile, { count: scn.sizes.bigMiB }))
  })
  return r.value
}

/** rclone mount of the same (encrypted) blob, read cold by dd: the peer. */
export async function rcloneRead(scn: Scenario): Promise<number> {
  const m = await startRclone({ blobEndpoint: scn.blobEndpoint, container: scn.blockBlob.container, blob: scn.blockBlob.name, dir: scn.dir })
  try {
    await dropCaches([scn.az.location])
    return mbps(scn.sizes.bigMiB * MiB, await ddRead(m.file, { count: scn.sizes.bigMiB }))
  } finally {
    await m.stop()
  }
}

const randJob = (mp: string, seconds: number, iopsLog?: string): FioJob => ({
  name: 'rand',
  file: path.join(mp, 'rand.bin'),
  rw: 'randread',
  bs: '4k',
  numjobs: 4,
  seconds,
  ...(iopsLog ? { iopsLog } : {}),
})
/** One pass over big.bin: a second pass could be served from the FUSE file's page cache (loop in buffered mode). */
const seqJob = (mp: string): FioJob => ({ name: 'seq', file: path.join(mp, 'big.bin'), rw: 'read', bs: '1M' })

export interface MountedRandom {
  iops: number
  /** Bytes fetched from storage per byte fio read. */
  amplification: number
}

/** fio randread, psync, 4 jobs, 4 KiB, O_DIRECT, on a fresh mount with the page cache dropped. */
export async function mountedRandom(scn: Scenario, seconds: number, backend?: string, loopBuffered = false): Promise<MountedRandom> {
  const r = await withMount(scn, { backend, loopBuffered }, async (run) => {
    await dropCaches([scn.az.location])
    const [g] = await runFio([randJob(run.mountPoint, seconds)])
    return g!
  })
  const fetched = (r.atEnd?.bytesFetched ?? Number.NaN) - (r.run.atReady?.bytesFetched ?? 0)
  return { iops: r.value.iops, amplification: fetched / r.value.ioBytes }
}

/** fio: one cold pass of 1 MiB O_DIRECT reads over big.bin, alone. */
export async function mountedSeqFio(scn: Scenario, backend?: string, loopBuffered = false): Promise<number> {
  const r = await withMount(scn, { backend, loopBuffered }, async (run) => {
    await dropCaches([scn.az.location])
    const [g] = await runFio([seqJob(run.mountPoint)])
    return g!.bw / 1e6
  })
  return r.value
}

/**
 * Both fio readers at once on one mount: MB/s of the sequential pass, and IOPS of the random
 * reader counted only while the sequential one ran (from fio's per-I/O log).
 */
export async function mountedMixed(scn: Scenario, seconds: number, backend?: string, loopBuffered = false): Promise<{ seqMBps: number; randIops: number }> {
  const r = await withMount(scn, { backend, loopBuffered }, async (run) => {
    await dropCaches([scn.az.location])
    const prefix = path.join(scn.dir, `fio-${Date.now()}`)
    try {
      const [seq] = await runFio([seqJob(run.mountPoint), randJob(run.mountPoint, 2 * seconds, prefix)])
      const ms = Math.min(seq!.runtimeMs, 2 * seconds * 1000)
      return { seqMBps: seq!.bw / 1e6, randIops: (await iosWithin(prefix, ms)) / (ms / 1000) }
    } finally {
      await exec('sh', ['-c', `rm -f ${prefix}_iops.*.log`])
    }
  })
  return r.value
}

/**
 * Time to the first 4 KiB of a file nobody has read, in a fresh mount with the page cache
 * dropped: open() and one read(), as an application starts on a file. Milliseconds.
 */
/** open() + the first 4 KiB of a cold file: how long, and how many requests storage answered on the way (ext4's directory and inode blocks come before the data). */
export async function mountedFirstByte(scn: Scenario, file: string, backend?: string): Promise<{ ms: number; requests: number }> {
  const r = await withMount(scn, { backend }, async (run) => {
    await dropCaches([scn.az.location])
    const buf = Buffer.alloc(4096)
    const started = performance.now()
    const fh = await open(path.join(run.mountPoint, file), 'r')
    try {
      await fh.read(buf, 0, buf.length, 0)
      return performance.now() - started
    } finally {
      await fh.close()
    }
  })
  const requests = (c?: CacheCounters) => (c ? c.fetches + c.prefetches : Number.NaN)
  return { ms: r.value, requests: requests(r.atEnd) - (r.run.atReady ? requests(r.run.atReady) : 0) }
}

/** Raw random 4 KiB GETs while a raw parallel download of the blob runs beside them: what storage itself allows a mixed load. */
export async function rawMixed(scn: Scenario, seconds: number, download: () => Promise<number>): Promise<number> {
  let stop = false
  const bg = (async () => {
    while (!stop) await download()
  })()
  const iops = await rawRandom4k(scn.blockUrl, scn.blobBytes, seconds, 4, 'pipeline')
  stop = true
  await bg
  return iops
}

/**
 * Put Page uploads of the write source to a new page blob, 4 MiB x 8: the write reference, by the
 * SDK (uploadPages) or by the libcurl fetcher (NativePagePut, under a lease as remotefs writes).
 */
export async function rawPutPages(scn: Scenario, data: Buffer, client: 'sdk' | 'curl' = 'sdk'): Promise<number> {
  const container = scn.az.service.getContainerClient('bench')
  const name = `put-${Date.now()}-${Math.random().toString(16).slice(2, 6)}`
  const blob: PageBlobClient = container.getPageBlobClient(name)
  await blob.create(data.length)
  const lease = client === 'curl' ? await blob.getBlobLeaseClient().acquireLease(-1) : undefined
  const curl = client === 'curl' ? new NativePagePut(`${blob.url}?${blobSas(scn.az, 'bench', name, 'rw')}`) : undefined
  try {
    const chunk = 4 * MiB
    let next = 0
    const started = performance.now()
    const worker = async () => {
      while (next < data.length) {
        const off = next
        next += chunk
        const len = Math.min(chunk, data.length - off)
        const body = data.subarray(off, off + len)
        if (curl) await curl.putPages(off, body, { leaseId: lease!.leaseId! })
        else await blob.uploadPages(body, off, len)
      }
    }
    await Promise.all(Array.from({ length: 8 }, worker))
    return mbps(data.length, performance.now() - started)
  } finally {
    if (lease)
      await blob
        .getBlobLeaseClient(lease.leaseId)
        .releaseLease()
        .catch(() => {})
    await blob.delete().catch(() => {})
  }
}

/** Sequential write of the source into the read-write mount, then fsync: dd conv=fsync in a child. */
export async function mountedWrite(scn: Scenario, backend?: string, http?: BlobHttpClient): Promise<number> {
  const r = await withMount(scn, { backend, readWrite: true, http }, async (run) => {
    const started = performance.now()
    await exec('dd', [`if=${scn.writeSource}`, `of=${path.join(run.mountPoint, 'written.bin')}`, 'bs=1M', 'conv=fsync', 'status=none'])
    const ms = performance.now() - started
    await exec('rm', ['-f', path.join(run.mountPoint, 'written.bin')])
    await exec('sync', ['-f', run.mountPoint])
    return mbps(scn.sizes.writeMiB * MiB, ms)
  })
  return r.value
}
