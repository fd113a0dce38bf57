import { isWritable, type RangeSource, type WritableRangeSource } from '../storage/range-source.js'
import { BlockCache, type BlockCacheOptions } from './block-cache.js'
import { WritableBlockCache } from './writable-block-cache.js'

/** Over a writable source, a WritableBlockCache (writes cached and written back); else a read-only BlockCache. */
export function cacheOver(inner: WritableRangeSource, o?: BlockCacheOptions): WritableBlockCache
export function cacheOver(inner: RangeSource, o?: BlockCacheOptions): BlockCache
export function cacheOver(inner: RangeSource, o: BlockCacheOptions = {}): BlockCache {
  return isWritable(inner) ? new WritableBlockCache(inner, o) : new BlockCache(inner, o)
}
