import type { Access, Stream } from './access-pattern.js'
import type { Extent } from './extent.js'

/** What readahead needs of the cache. */
export interface ReadaheadHost {
  readonly size: number
  locate(offset: number): { extent: Extent } | { lo: number; hi: number }
  /** Starts (or queues) a readahead fetch of the free interval from `p` towards `end`, in chunks of `unit`; undefined when there is no room. */
  fetchAhead(free: { lo: number; hi: number }, p: number, end: number, unit: number, stream: Stream): Extent | undefined
  /** Readahead nobody will read: dropped if it has not started, aborted if it has. */
  cancel(e: Extent): void
}

/**
 * Readahead belongs to its stream: it keeps a sequential stream's window fetched ahead, and
 * remembers what each stream has fetched and not read yet, so that a stream that goes away
 * takes its readahead with it (docs/data-path.md, "Dropping readahead").
 */
export class Readahead {
  /** Readahead not read yet, by stream, so that a stream's can be dropped without a scan. */
  private readonly ahead = new Map<number, Set<Extent>>()

  constructor(private readonly host: ReadaheadHost) {}

  /** Fetches ahead of a sequential stream, up to its window, in chunks of its unit. */
  extend(access: Access): void {
    if (access.window === 0) return
    const s = access.stream
    const limit = Math.min(this.host.size, s.next + access.window)
    let p = Math.max(s.next, s.aheadTo)
    while (p < limit) {
      const at = this.host.locate(p)
      if ('extent' in at) {
        p = at.extent.start + at.extent.length
        continue
      }
      const e = this.host.fetchAhead(at, p, Math.min(limit, p + access.unit), access.unit, s)
      if (!e) break
      p = e.start + e.length
    }
    s.aheadTo = Math.max(s.aheadTo, p)
  }

  /** `e` is fetched ahead of `stream`. */
  track(e: Extent, stream: Stream): void {
    e.stream = stream.id
    let set = this.ahead.get(stream.id)
    if (!set) {
      set = new Set()
      this.ahead.set(stream.id, set)
    }
    set.add(e)
  }

  /** Read at last: no longer readahead to protect or to drop. */
  claim(e: Extent): void {
    e.prefetched = false
    if (e.stream === undefined) return
    this.ahead.get(e.stream)?.delete(e)
    e.stream = undefined
  }

  /** `e` left the index. */
  forget(e: Extent): void {
    if (e.stream !== undefined) this.ahead.get(e.stream)?.delete(e)
  }

  /** A stream that went away leaves readahead nobody will read: what has not been read is cancelled. False when it had none. */
  drop(s: Stream): boolean {
    const set = this.ahead.get(s.id)
    if (!set) return false
    this.ahead.delete(s.id)
    for (const e of set) {
      e.stream = undefined
      if (!e.prefetched || e.data || e.pins > 0 || e.gone) continue
      this.host.cancel(e)
    }
    return true
  }

  clear(): void {
    this.ahead.clear()
  }
}
