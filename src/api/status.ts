export type FilesystemState = 'pending' | 'mounting' | 'mounted' | 'failed' | 'unmounting' | 'unmounted'

export interface FilesystemStatus {
  index: number
  mountPoint: string
  state: FilesystemState
  reason?: string
  unlock?: string
  mounter?: string
  /** dm-verity counters, live, for filesystems with a `verity` section. */
  verity?: VerityStatus
  /** Read-write: whether the blob's write lease is still held (when lost, reads and writes that need storage fail). */
  lease?: LeaseStatus
  /** What the filesystem's block cache holds now, against its budget (`cache.memory_mib`). */
  memory?: MemoryStatus
}

export interface MemoryStatus {
  /** The cache's bound: cached, in-flight and spare bytes never exceed it. */
  budgetBytes: number
  /** Cached, in-flight and spare bytes now, and their high-water mark since the mount. */
  cacheBytes: number
  peakCacheBytes: number
  cachedRanges: number
  inFlightRanges: number
  /** Written and not yet in the blob (read-write). */
  dirtyRanges: number
}

/** The whole process (every filesystem, Node.js, the native addons), from process.memoryUsage(). */
export interface ProcessMemory {
  rssBytes: number
  heapUsedBytes: number
  /** Buffers outside V8's heap: the caches' memory is here. */
  externalBytes: number
}

export interface LeaseStatus {
  held: boolean
  lostAt?: string
  reason?: string
}

export interface VerityStatus {
  rootHash: string
  verifiedBlocks: number
  failedReads: number
  badDataBlocks: number
  badHashBlocks: number
  firstFailure?: string
}

export interface StateDetail {
  reason?: string
  unlock?: string
  mounter?: string
  /** Read on every snapshot, so /status shows the counters as they are now. */
  verity?: () => VerityStatus
  lease?: () => LeaseStatus
  memory?: () => MemoryStatus
}

/** The keyprovider gRPC service next to the API (remotefs --grpc-port): off, or where it listens. */
export type GrpcStatus = { serving: false } | { serving: true; addresses: string[] }

/**
 * What /status reports. Ready only once start-up (mounts and key releases) has finished, so a
 * readiness probe on /status holds the application back until its files are there.
 */
export class ServiceStatus {
  phase: 'starting' | 'ready' | 'failed' | 'stopping' = 'starting'
  grpc: GrpcStatus = { serving: false }
  private readonly filesystems = new Map<number, FilesystemStatus>()
  private readonly verity = new Map<number, () => VerityStatus>()
  private readonly lease = new Map<number, () => LeaseStatus>()
  private readonly memory = new Map<number, () => MemoryStatus>()

  constructor(filesystems: { index: number; mountPoint: string }[] = []) {
    for (const f of filesystems) this.filesystems.set(f.index, { index: f.index, mountPoint: f.mountPoint, state: 'pending' })
    if (filesystems.length === 0) this.phase = 'ready'
  }

  update(index: number, state: FilesystemState, detail: StateDetail = {}): void {
    const { verity, lease, memory, ...rest } = detail
    if (verity) this.verity.set(index, verity)
    if (lease) this.lease.set(index, lease)
    if (memory) this.memory.set(index, memory)
    // A filesystem that is not mounted holds no cache.
    if (state !== 'mounted') this.memory.delete(index)
    const f = this.filesystems.get(index)
    if (f) Object.assign(f, { state, ...rest }, state === 'failed' ? {} : { reason: undefined })
  }

  get ready(): boolean {
    return this.phase === 'ready'
  }

  snapshot(): { ready: boolean; phase: string; filesystems: FilesystemStatus[]; grpc: GrpcStatus; memory: ProcessMemory } {
    const m = process.memoryUsage()
    return {
      ready: this.ready,
      phase: this.phase,
      filesystems: [...this.filesystems.values()].map((f) => {
        const verity = this.verity.get(f.index)?.()
        const lease = this.lease.get(f.index)?.()
        const memory = this.memory.get(f.index)?.()
        return JSON.parse(JSON.stringify({ ...f, ...(verity ? { verity } : {}), ...(lease ? { lease } : {}), ...(memory ? { memory } : {}) })) as FilesystemStatus
      }),
      grpc: structuredClone(this.grpc),
      memory: { rssBytes: m.rss, heapUsedBytes: m.heapUsed, externalBytes: m.external },
    }
  }
}
