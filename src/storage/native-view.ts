/**
 * How the libfuse3 data plane reads a served file without JavaScript: the file is a window onto
 * a BlockCache's bytes (at `offset`), optionally AES-XTS encrypted (the userspace LUKS2 unlock),
 * and the cache mirrors every cached range into a native table the FUSE threads read. Sources
 * that are such a window say so with RangeSource.nativeView(). See docs/data-path.md.
 */
export interface CacheMirror {
  /** `data` (the whole cached range starting at `start`) may be read until retract(start) returns. */
  publish(start: number, data: Buffer): void
  /** Returns once no native reader uses the range any more. */
  retract(start: number): void
  clear(): void
}

/** What a cache offers the native data plane. */
export interface MirroredCache {
  readonly size: number
  attachMirror(mirror: CacheMirror): void
  detachMirror(): void
  /** Reads served natively, as (offset, length) pairs, for the access pattern and eviction order. */
  noteReads(ranges: ArrayLike<number>): void
  /** Caches a range as a read of it would, without copying it (the native side reads it next). */
  load(offset: number, length: number): Promise<void>
}

export interface XtsView {
  /** The AES-XTS key (32 or 64 bytes); the native side copies it and zeroes its copy on close. */
  key: Buffer
  /** Data unit (LUKS2 sector) size. */
  unit: number
  plain64: boolean
}

export interface NativeView {
  cache: MirroredCache
  /** Where byte 0 of the source is in the cache. */
  offset: number
  xts?: XtsView
  /**
   * A load that failed with this error is not the reader's answer: the read goes through the
   * source instead (dm-verity: one bad 4 KiB block fails its whole cache block, not its neighbours).
   */
  readAround?: (err: unknown) => boolean
  /** Whole data units the native side has encrypted already (`offset` in the source's coordinates; the buffer is handed over). */
  writeEncrypted?(offset: number, ciphertext: Buffer): Promise<void>
}
