import { addonLoader } from '../process/load-addon.js'
import type { CacheMirror, XtsView } from '../storage/native-view.js'

/** A native mirror of one BlockCache's cached ranges, read by the FUSE threads. */
export type Fuse3Table = CacheMirror & { size(): number }

export interface Fuse3SessionFile {
  name: string
  size: number
  writable: boolean
  /** Without a table every read goes to JavaScript. */
  table?: Fuse3Table
  offset?: number
  xts?: XtsView
}

/**
 * The event kinds, as the addon defines and exports them (`events`): read, a miss of a file with
 * a table (load it, then retry); readData, answer with the bytes; write and writeEncrypted (whole
 * units of an AES-XTS file, already encrypted by the FUSE thread), answer with replyWrite; fsync,
 * replyError(id, 0) once durable; touch, reads served natively (drainTouches); stopped, the end.
 */
export interface Fuse3EventKinds {
  read: number
  readData: number
  write: number
  writeEncrypted: number
  fsync: number
  touch: number
  stopped: number
}

/** How a session ended: by unmount() or from outside, and whether its threads ended and the session was destroyed. */
export interface Fuse3Stop {
  requested: boolean
  ended: boolean
  detail: string
}

/** kind, request id (0 for touch and stopped), file index, offset, length, and the written bytes (write events) or the stop. */
export type Fuse3EventHandler = (kind: number, id: number, file: number, offset: number, length: number, data: Buffer | Fuse3Stop | undefined) => void

export interface Fuse3SessionStats {
  nativeReads: number
  nativeBytes: number
  postedReads: number
  postedWrites: number
  postedFsyncs: number
  /** Requests JavaScript has not answered yet. */
  pending: number
}

/**
 * One mount. Answers take the request id of an event and return false when the request is no
 * longer there (answered with EIO at shutdown); answering a request the wrong way (replyData to a
 * write, more bytes than were asked for) answers it with EIO and throws.
 */
export interface Fuse3Session {
  /** Mounts; throws (leaving nothing mounted) when it cannot. */
  mount(): void
  replyData(id: number, data: Buffer): boolean
  /** After a read miss: the range is cached now; a native thread answers from the table. */
  retry(id: number): boolean
  replyWrite(id: number, count: number): boolean
  /** errno 0 (success) for an fsync only. */
  replyError(id: number, errno: number): boolean
  /** Reads served natively since the last call, per file, as (offset, length) pairs in cache coordinates. */
  drainTouches(): (Float64Array | null)[]
  stats(): Fuse3SessionStats
  /** Starts unmounting; a stopped event follows (docs/data-path.md, "Shutdown"). */
  unmount(): void
  /** After the stopped event: releases the event channel. */
  close(): void
}

export interface Fuse3Addon {
  Table: new () => Fuse3Table
  Session: new (options: { mountpoint: string; fsname: string; subtype: string; files: Fuse3SessionFile[] }, onEvent: Fuse3EventHandler) => Fuse3Session
  libfuseVersion(): string
  /** Largest READ and WRITE negotiated with the kernel. */
  maxRequest: number
  events: Readonly<Fuse3EventKinds>
}

/** The libfuse3 data plane built from native/fuse3 by npm run setup (needs libfuse3-dev to build, libfuse3-3 to run). */
export const loadFuse3Addon = addonLoader<Fuse3Addon>({
  file: '../../../native/fuse3/build/Release/encfs_fuse3.node',
  code: 'FUSE3_ADDON_MISSING',
  notBuilt: 'the libfuse3 addon is not built (npm run setup builds it when libfuse3-dev is installed)',
  notLoading: "the libfuse3 addon does not load (it needs Debian's libfuse3-3)",
})
