/**
 * A cached range of the source, shared by the index, the memory budget, the fetches and the
 * write-back. Ranges never overlap and never cross a block boundary; their edges are multiples
 * of 512 bytes (or the end of the source), so page-blob write-backs align.
 */
export interface Extent {
  start: number
  length: number
  /** The bytes, once fetched (or written); a view of `buffer`. */
  data?: Buffer
  buffer?: Buffer
  promise: Promise<void>
  /** Readers copying out of it, or writers into it: never evicted while > 0. */
  pins: number
  /** Fetched ahead and not read yet: only evicted by demand, never by more readahead. */
  prefetched: boolean
  /** The stream it was fetched ahead of; its readahead is dropped with the stream. */
  stream?: number
  /** Read by a sequential stream that has moved past it: evicted before anything else. */
  consumed: boolean
  abort?: AbortController
  /** Queued and not started: dropping it costs nothing. */
  queued?: () => void
  /** Bytes written and not yet on the source (extent-relative); never evicted while set. */
  dirty?: { lo: number; hi: number }
  /** Write-backs of this range under way; never evicted while > 0 (a failure re-dirties it). */
  uploading: number
  /** The last write-back of this range: the next one waits for it, so storage ends with the newest bytes. */
  upload?: Promise<void>
  gone: boolean
}

/** Page blobs take whole 512-byte pages. */
export const SECTOR = 512

export const alignDown = (n: number, a: number): number => Math.floor(n / a) * a
export const alignUp = (n: number, a: number): number => Math.ceil(n / a) * a

/** The cached bytes of `e` as one view of exactly its length. */
export function viewOf(e: Extent, buffer: Buffer): Buffer {
  return buffer.length === e.length ? buffer : buffer.subarray(0, e.length)
}
