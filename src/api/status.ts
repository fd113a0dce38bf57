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

  constructor(filesystems: { index: number; mountPoint: string }[] = []) {
    for (const f of filesystems) this.filesystems.set(f.index, { index: f.index, mountPoint: f.mountPoint, state: 'pending' })
    if (filesystems.length === 0) this.phase = 'ready'
  }

  update(index: number, state: FilesystemState, detail: StateDetail = {}): void {
    const { verity, lease, ...rest } = detail
    if (verity) this.verity.set(index, verity)
    if (lease) this.lease.set(index, lease)
    const f = this.filesystems.get(index)
    if (f) Object.assign(f, { state, ...rest }, state === 'failed' ? {} : { reason: undefined })
  }

  get ready(): boolean {
    return this.phase === 'ready'
  }

  snapshot(): { ready: boolean; phase: string; filesystems: FilesystemStatus[]; grpc: GrpcStatus } {
    return {
      ready: this.ready,
      phase: this.phase,
      filesystems: [...this.filesystems.values()].map((f) => {
        const verity = this.verity.get(f.index)?.()
        const lease = this.lease.get(f.index)?.()
        return JSON.parse(JSON.stringify({ ...f, ...(verity ? { verity } : {}), ...(lease ? { lease } : {}) })) as FilesystemStatus
      }),
      grpc: structuredClone(this.grpc),
    }
  }
}
