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
 * Read: a miss of a file with a table (load it, then retry); ReadData: answer with the bytes;
 * WriteEncrypted: whole units of an AES-XTS file, already encrypted by the FUSE thread.
 */
export const Fuse3Event = { Read: 1, Write: 2, Fsync: 3, Touch: 4, Stopped: 5, ReadData: 6, WriteEncrypted: 7 } as const
export type Fuse3Event = (typeof Fuse3Event)[keyof typeof Fuse3Event]

/** kind, request id, file index, offset, length, and the written bytes (Write) or a message (Stopped). */
export type Fuse3EventHandler = (kind: Fuse3Event, id: number, file: number, offset: number, length: number, data?: Buffer | string) => void

export interface Fuse3SessionStats {
  nativeReads: number
  nativeBytes: number
  postedReads: number
  postedWrites: number
  postedFsyncs: number
}

export interface Fuse3Session {
  replyData(id: number, data: Buffer): void
  /** After a Read miss: the range is cached now; a native thread answers from the table. */
  retry(id: number): void
  replyWrite(id: number, count: number): void
  replyError(id: number, errno: number): void
  /** Reads served natively since the last call, per file, as (offset, length) pairs in cache coordinates. */
  drainTouches(): (Float64Array | null)[]
  stats(): Fuse3SessionStats
  /** Starts unmounting; a Stopped event with "unmounted" follows (offset 1: the threads ended). */
  unmount(): void
  /** After the Stopped event: releases the event channel. */
  close(): void
}

export interface Fuse3Addon {
  Table: new () => Fuse3Table
  Session: new (options: { mountpoint: string; fsname: string; subtype: string; files: Fuse3SessionFile[] }, onEvent: Fuse3EventHandler) => Fuse3Session
  libfuseVersion(): string
  /** Largest READ and WRITE negotiated with the kernel. */
  maxRequest: number
}

/** The libfuse3 data plane built from native/fuse3 by npm run setup (needs libfuse3-dev to build, libfuse3-3 to run). */
export const loadFuse3Addon = addonLoader<Fuse3Addon>({
  file: '../../../native/fuse3/build/Release/encfs_fuse3.node',
  code: 'FUSE3_ADDON_MISSING',
  notBuilt: 'the libfuse3 addon is not built (npm run setup builds it when libfuse3-dev is installed)',
  notLoading: "the libfuse3 addon does not load (it needs Debian's libfuse3-3)",
})
