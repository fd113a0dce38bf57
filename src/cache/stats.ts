export interface BlockCacheStats {
  /** Reads (or parts of reads) found cached or already on the way. */
  hits: number
  /** Ranges a read had to fetch. */
  misses: number
  fetches: number
  prefetches: number
  /** Readahead dropped before it was used (its stream went away). */
  cancelled: number
  bytesFetched: number
  /** Bytes handed to readers (the denominator of read amplification). */
  bytesRead: number
  evictions: number
  inFlight: number
  /** Cached ranges (whole blocks for sequential readers, a few KiB for random ones). */
  cachedBlocks: number
  /** Cached + in-flight bytes now (kept spare buffers included), and their high-water mark. */
  bytes: number
  peakBytes: number
  dirtyBlocks: number
  bytesWritten: number
  writeBacks: number
  writeFailures: number
}

/** What the cache counts as it goes (the rest of BlockCacheStats is read off its state). */
export type CacheCounters = Omit<BlockCacheStats, 'inFlight' | 'cachedBlocks' | 'bytes' | 'peakBytes' | 'dirtyBlocks'>

export function newCounters(): CacheCounters {
  return { hits: 0, misses: 0, fetches: 0, prefetches: 0, cancelled: 0, bytesFetched: 0, bytesRead: 0, evictions: 0, bytesWritten: 0, writeBacks: 0, writeFailures: 0 }
}
