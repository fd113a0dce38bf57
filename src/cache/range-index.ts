import type { CacheMirror } from '../storage/native-view.js'
import type { Extent } from './extent.js'

/**
 * Where every cached (or in-flight) range is: the ranges of each block sorted by start, the
 * eviction order, and the native mirror of the cached ones, from which the libfuse3 data plane
 * serves hits without entering JavaScript (see native-view.ts).
 */
export class RangeIndex {
  /** Extents of each block, sorted by start. */
  private readonly slots = new Map<number, Extent[]>()
  /** Eviction order: least recently used first. */
  readonly lru = new Set<Extent>()
  private mirror?: CacheMirror

  constructor(
    private readonly size: number,
    private readonly blockSize: number,
  ) {}

  private slotOf(offset: number): number {
    return Math.floor(offset / this.blockSize)
  }

  /** The extent holding `offset`, or the free interval around it (within its block). */
  locate(offset: number): { extent: Extent } | { lo: number; hi: number } {
    const slot = this.slotOf(offset)
    const list = this.slots.get(slot)
    let lo = slot * this.blockSize
    let hi = Math.min(lo + this.blockSize, this.size)
    if (!list) return { lo, hi }
    // Binary search for the last extent starting at or before offset.
    let a = 0
    let b = list.length - 1
    let at = -1
    while (a <= b) {
      const m = (a + b) >> 1
      if (list[m]!.start <= offset) {
        at = m
        a = m + 1
      } else b = m - 1
    }
    if (at >= 0) {
      const e = list[at]!
      if (offset < e.start + e.length) return { extent: e }
      lo = e.start + e.length
    }
    const next = list[at + 1]
    if (next) hi = next.start
    return { lo, hi }
  }

  insert(e: Extent): void {
    const slot = this.slotOf(e.start)
    let list = this.slots.get(slot)
    if (!list) {
      list = []
      this.slots.set(slot, list)
    }
    let i = list.length
    while (i > 0 && list[i - 1]!.start > e.start) i--
    list.splice(i, 0, e)
    this.lru.add(e)
  }

  /** Takes `e` out (native readers let go of it first); it is marked gone for whoever still holds it. */
  remove(e: Extent): void {
    if (e.gone) return
    e.gone = true
    if (e.data) this.mirror?.retract(e.start)
    const slot = this.slotOf(e.start)
    const list = this.slots.get(slot)
    if (list) {
      const i = list.indexOf(e)
      if (i >= 0) list.splice(i, 1)
      if (list.length === 0) this.slots.delete(slot)
    }
    this.lru.delete(e)
  }

  touch(e: Extent): void {
    this.lru.delete(e)
    this.lru.add(e)
  }

  /** `e.data` is readable by native readers (again). */
  publish(e: Extent): void {
    this.mirror?.publish(e.start, e.data!)
  }

  /** Native readers must not see `e` while it changes: returns once none uses it. */
  retract(e: Extent): void {
    this.mirror?.retract(e.start)
  }

  /** Publishes every cached range to `mirror` and keeps it up to date until detachMirror(). */
  attachMirror(mirror: CacheMirror): void {
    this.mirror = mirror
    for (const list of this.slots.values()) for (const e of list) if (e.data) mirror.publish(e.start, e.data)
  }

  detachMirror(): void {
    this.mirror?.clear()
    this.mirror = undefined
  }

  counts(): { cached: number; inFlight: number } {
    let inFlight = 0
    let cached = 0
    for (const list of this.slots.values()) {
      for (const e of list) {
        if (e.data) cached++
        else inFlight++
      }
    }
    return { cached, inFlight }
  }

  /** Everything goes (the cache closes): every range is marked gone and its fetch, if any, aborted. */
  clear(): void {
    this.detachMirror()
    for (const list of this.slots.values())
      for (const e of list) {
        e.gone = true
        e.abort?.abort()
      }
    this.slots.clear()
    this.lru.clear()
  }
}
