/**
 * Tells sequential readers from random ones, per stream, so that the block cache fetches small
 * ranges for random reads and large, growing ones ahead of a real sequential reader (rclone's
 * chunk doubling, blobfuse2's prefetch ramp). Several streams are followed at once, so a random
 * reader beside a sequential one breaks neither. See docs/data-path.md.
 */

/**
 * A read this close to where a stream stands continues it, before or after (the kernel sends a
 * readahead window as several concurrent requests, which arrive in any order): eight of the
 * stream's last reads, so small random reads near a stream rarely join it.
 */
function tolerance(s: Stream): number {
  return Math.min(16 * 1024 * 1024, Math.max(64 * 1024, 8 * s.lastLength))
}
/** A stream is sequential once it has read this much in adjacent reads, in at least two reads. */
export const STREAK_BYTES = 256 * 1024
/** Smallest fetch of a sequential stream; it grows with the streak up to the block size. */
export const FIRST_CHUNK = 1024 * 1024
/** Fetch granularity of random reads: the largest LUKS2 sector, so a unit is never fetched twice. */
export const RANDOM_UNIT = 4096
const MAX_STREAMS = 8
/** A sequential stream not read for this long has stopped: its readahead is dropped. */
const IDLE_MS = 5000

function isSequential(s: Stream): boolean {
  return s.reads >= 2 && s.bytes >= STREAK_BYTES
}

export interface Stream {
  readonly id: number
  /** Where the stream's next read is expected. */
  next: number
  /** Bytes read by the stream so far. */
  bytes: number
  reads: number
  lastLength: number
  /** How far readahead has been issued (absolute offset). */
  aheadTo: number
  lastUse: number
  lastUseMs: number
}

export interface Access {
  stream: Stream
  sequential: boolean
  /** Fetch granularity for what this read misses. */
  unit: number
  /** Bytes to keep fetched ahead of the stream (0: none). */
  window: number
}

function floorPow2(n: number): number {
  return 2 ** Math.floor(Math.log2(Math.max(1, n)))
}

export class AccessPattern {
  private readonly streams: Stream[] = []
  private clock = 0
  private ids = 0

  constructor(private readonly o: { blockSize: number; maxWindow: number; onDrop?: (s: Stream) => void }) {}

  /** Records a read and says how to fetch around it. */
  observe(offset: number, length: number): Access {
    const end = offset + length
    this.clock++
    let s = this.streams.find((x) => offset >= x.next - tolerance(x) && offset <= x.next + tolerance(x))
    if (s) {
      s.next = Math.max(s.next, end)
      s.bytes += length
      s.reads++
      s.lastLength = length
      s.lastUse = this.clock
    } else {
      this.expire()
      s = { id: ++this.ids, next: end, bytes: length, reads: 1, lastLength: length, aheadTo: end, lastUse: this.clock, lastUseMs: Date.now() }
      this.streams.push(s)
      this.evict(false, s)
    }
    s.lastUseMs = Date.now()
    // A stream that has become sequential takes a sequential place.
    if (isSequential(s)) this.evict(true, s)
    return this.classify(s)
  }

  private classify(s: Stream): Access {
    const sequential = isSequential(s)
    if (!sequential) return { stream: s, sequential, unit: RANDOM_UNIT, window: 0 }
    // Chunks and window eight times what the stream has read (rclone doubles its chunk per chunk
    // read): whole blocks after 1 MiB, the full window after 8 MiB. Small GETs are dear (each costs
    // storage about what a whole block does), so the ramp is short; a short file costs a few MiB.
    const unit = Math.min(this.o.blockSize, Math.max(FIRST_CHUNK, floorPow2(8 * s.bytes)))
    return { stream: s, sequential, unit, window: Math.min(this.o.maxWindow, Math.max(unit, 8 * s.bytes)) }
  }

  /**
   * Keeps at most MAX_STREAMS streams of each kind, dropping the one used longest ago. Random
   * readers make a new candidate stream per read, so they only push each other out: a sequential
   * stream (the only kind with readahead) gives way only to another sequential one.
   */
  private evict(sequential: boolean, keep: Stream): void {
    const kind = this.streams.filter((x) => isSequential(x) === sequential)
    if (kind.length <= MAX_STREAMS) return
    let victim: Stream | undefined
    for (const x of kind) if (x !== keep && (!victim || x.lastUse < victim.lastUse)) victim = x
    if (!victim) return
    this.streams.splice(this.streams.indexOf(victim), 1)
    this.o.onDrop?.(victim)
  }

  /** A sequential stream whose reader has gone quiet gives its readahead back. */
  private expire(): void {
    const now = Date.now()
    for (let i = this.streams.length - 1; i >= 0; i--) {
      const x = this.streams[i]!
      if (isSequential(x) && now - x.lastUseMs > IDLE_MS) {
        this.streams.splice(i, 1)
        this.o.onDrop?.(x)
      }
    }
  }

  /** How a read would be classified, without recording it. */
  peek(offset: number, length: number): Access {
    const s = this.streams.find((x) => offset >= x.next - tolerance(x) && offset <= x.next + tolerance(x))
    if (!s)
      return {
        stream: { id: 0, next: offset + length, bytes: length, reads: 1, lastLength: length, aheadTo: offset + length, lastUse: 0, lastUseMs: 0 },
        sequential: false,
        unit: RANDOM_UNIT,
        window: 0,
      }
    return this.classify(s)
  }

  /** Streams still followed (for tests and statistics). */
  active(): readonly Stream[] {
    return this.streams
  }
}
