import { timingSafeEqual } from 'node:crypto'
import { FillingSource, readInto, type RangeSource } from '../storage/range-source.js'
import { SliceSource } from '../storage/slice-source.js'
import { silentLogger, type Logger } from '../log/logger.js'
import { BLOCK_SIZE, DIGEST_SIZE, SUPERBLOCK_SIZE, parseSuperblock, type VeritySuperblock } from './superblock.js'
import { FANOUT, TreeGeometry } from './geometry.js'
import { hashBlock, hashBlocks, hashBlocksAsync } from './hash-blocks.js'
import { VerityError, VerityMismatchError, type BadRange } from './errors.js'
import { BadBlockLedger, type BadBlockOptions } from './bad-blocks.js'

export interface VeritySourceOptions {
  /** The pinned root hash (verity.root_hash). */
  rootHash: Buffer
  /** Where the hash area (superblock, then tree) starts in the hash source. */
  hashOffset: number
  /** Names the hash area in messages, e.g. "verity.hash_url" or "the image at verity.hash_offset 123". */
  where?: string
  logger?: Logger
  /** The data-block count pinned by the configuration (verity.data_blocks), when it pins one. */
  dataBlocks?: number
  /** Bound on cached verified hash blocks; default 16 MiB (the whole tree of a 2 GiB image). */
  hashCacheBytes?: number
  /** Bounds of the failure bookkeeping and its log lines (bad-blocks.ts). */
  badBlocks?: BadBlockOptions
}

export interface VerityStats {
  rootHash: string
  dataBlocks: number
  /** 4 KiB data blocks hashed and found to match (each time they were fetched). */
  verifiedBlocks: number
  /** Reads refused because part of them failed verification. */
  failedReads: number
  /** Distinct data blocks found modified, and hash blocks that did not chain up to the root. */
  badDataBlocks: number
  badHashBlocks: number
  /** The first failure, as logged. */
  firstFailure?: string
  hashBlocksFetched: number
  cachedHashBlocks: number
}

/**
 * Hash blocks fetched per request: 128, one parent's span (512 KiB, covering 64 MiB of data).
 * Each request costs a fixed amount of CPU on both ends: at 32 blocks, streaming made half again
 * as many requests as the data alone; at 128 about a sixth. A cold random read pays 512 KiB once
 * per 64 MiB region.
 */
const HASH_CHUNK = 128
/** Remembered failures for fast refusal; past this every read is simply verified again. */
const MAX_REMEMBERED = 1024

type HashBlockResult = Buffer | VerityMismatchError

/**
 * The data area of a dm-verity protected image, verified below the block cache: every 4 KiB
 * block fetched is hashed and checked up the tree to the pinned root before any of its bytes is
 * returned, so nothing unverified can be cached or decrypted. Accepts any range (aligned to 4 KiB
 * inside, one data fetch per range, hashes computed in bulk); verified hash blocks are cached
 * within a memory bound. A failed block fails the read that touched it and is logged and counted;
 * other blocks keep being served. Owns both sources.
 */
export class VeritySource extends FillingSource {
  readonly size: number
  readonly superblock: VeritySuperblock
  readonly geometry: TreeGeometry
  private readonly salt: Buffer
  private readonly logger: Logger
  private readonly where: string
  /** Verified hash blocks by tree block number; Map order is the LRU order. */
  private readonly hashCache = new Map<number, Buffer>()
  private readonly hashCacheLimit: number
  private readonly inflight = new Map<string, Promise<HashBlockResult[]>>()
  /** Known-bad data ranges (data offsets), kept to refuse repeated reads without fetching again. */
  private readonly known: BadRange[] = []
  private readonly failures: BadBlockLedger
  private readonly counters = { verifiedBlocks: 0, failedReads: 0, hashBlocksFetched: 0 }

  private constructor(
    private readonly data: RangeSource,
    private readonly hash: RangeSource,
    private readonly hashOffset: number,
    private readonly rootHash: Buffer,
    superblock: VeritySuperblock,
    o: VeritySourceOptions,
  ) {
    super()
    this.superblock = superblock
    this.geometry = new TreeGeometry(superblock.dataBlocks)
    this.salt = superblock.salt
    this.size = this.geometry.dataBytes
    this.logger = o.logger ?? silentLogger
    this.failures = new BadBlockLedger(this.logger, o.badBlocks)
    this.where = o.where ?? 'the hash tree'
    this.hashCacheLimit = Math.max(64, Math.floor((o.hashCacheBytes ?? 16 * 1024 * 1024) / BLOCK_SIZE))
  }

  /**
   * Reads the superblock, checks that the tree it describes fits the sources and chains up to
   * `rootHash`, and that the data-block count it claims is the one the tree was built for
   * (a superblock edited to show less or more of the image is refused here, at mount).
   * `hash` may be `data` itself (the tree after the data area, at `hashOffset`).
   */
  static async open(data: RangeSource, hash: RangeSource, o: VeritySourceOptions): Promise<VeritySource> {
    const where = o.where ?? 'the hash tree'
    if (o.rootHash.length !== DIGEST_SIZE)
      throw new VerityError('VERITY_BAD_ROOT_HASH', `verity.root_hash must be a ${DIGEST_SIZE}-byte sha256 hash, got ${o.rootHash.length} bytes`)
    if (!Number.isSafeInteger(o.hashOffset) || o.hashOffset < 0 || o.hashOffset % BLOCK_SIZE !== 0) {
      throw new VerityError('VERITY_BAD_OFFSET', `verity.hash_offset must be a multiple of ${BLOCK_SIZE}, got ${o.hashOffset}`)
    }
    if (hash.size < o.hashOffset + BLOCK_SIZE) {
      throw new VerityError(
        'VERITY_NO_SUPERBLOCK',
        `${where}: ${hash.size} bytes leave no room for a hash area at offset ${o.hashOffset}; check verity.hash_offset / verity.hash_url`,
      )
    }
    const superblock = parseSuperblock(await hash.read(o.hashOffset, SUPERBLOCK_SIZE), where)
    const v = new VeritySource(data, hash, o.hashOffset, Buffer.from(o.rootHash), superblock, o)
    const g = v.geometry
    if (hash.size < o.hashOffset + g.hashAreaBytes) {
      throw new VerityError(
        'VERITY_TRUNCATED',
        `${where}: the superblock describes a ${g.hashAreaBytes}-byte hash area for ${g.dataBlocks} data blocks, but only ${hash.size - o.hashOffset} bytes are there (truncated upload?)`,
      )
    }
    if (data.size < g.dataBytes) {
      throw new VerityError(
        'VERITY_TRUNCATED',
        `the image is ${data.size} bytes but the verity superblock covers ${g.dataBlocks} blocks of 4096 (${g.dataBytes} bytes): wrong hash tree for this image, or the image was truncated`,
      )
    }
    if (hash === data && o.hashOffset < g.dataBytes) {
      throw new VerityError(
        'VERITY_BAD_OFFSET',
        `verity.hash_offset ${o.hashOffset} is inside the ${g.dataBytes} bytes of data the tree covers; the hash area must come after the data`,
      )
    }
    await v.checkShape()
    // After the shape: a count edited against the tree is named as such; one the tree agrees with is checked here.
    checkDataSize(g, hash === data ? { hashOffset: o.hashOffset } : { imageBytes: data.size }, o.dataBlocks, where)
    v.logger.info(
      { dataBlocks: g.dataBlocks, levels: g.levels, treeBlocks: g.treeBlocks, uuid: superblock.uuid, rootHash: o.rootHash.toString('hex') },
      'dm-verity hash tree matches the pinned root hash',
    )
    return v
  }

  stats(): VerityStats {
    return {
      rootHash: this.rootHash.toString('hex'),
      dataBlocks: this.geometry.dataBlocks,
      ...this.counters,
      ...this.failures.stats(),
      cachedHashBlocks: this.hashCache.size,
    }
  }

  /**
   * The root and the superblock's data-block count, checked against each other: the path to the
   * last data block must verify, its entry be set and every entry after it be zero (as the tree
   * builder leaves them). Run once at open, so a wrong root hash or an edited superblock is a
   * refusal at mount, not a stream of read errors.
   */
  private async checkShape(): Promise<void> {
    const g = this.geometry
    if (g.levels === 0) return // one data block: the root is its hash, checked when it is read
    // The root alone first: a mismatch here is the root hash's (or the salt's), not the count's.
    const top = await this.hash.read(this.hashOffset + g.blockOffset(g.levels - 1, 0), BLOCK_SIZE)
    if (!equal(hashBlock(this.salt, top), this.rootHash)) {
      throw new VerityError(
        'VERITY_ROOT_MISMATCH',
        `${this.where}: the hash tree does not match verity.root_hash ${this.rootHash.toString('hex')}. ` +
          'Either root_hash is not the one printed when this tree was made (veritysetup format, encfs pack --verity), or the tree or its superblock was modified',
      )
    }
    const last = g.dataBlocks - 1
    const result = await this.hashBlockResult(0, Math.floor(last / FANOUT))
    const inconsistent = (why: string) =>
      new VerityError(
        'VERITY_SUPERBLOCK_MISMATCH',
        `${this.where}: the superblock says ${g.dataBlocks} data blocks, but the tree pinned by verity.root_hash ${why}: the superblock was modified, or belongs to another tree`,
      )
    if (result instanceof VerityMismatchError) throw inconsistent('does not verify along the path to the last of them (or that part of the tree was modified)')
    const entry = (last % FANOUT) * DIGEST_SIZE
    if (result.subarray(entry, entry + DIGEST_SIZE).every((b) => b === 0)) throw inconsistent('has no hash for the last of them')
  }

  /** The raw hash area (superblock and tree), for dm-verity in the kernel, which checks it itself. */
  hashArea(): RangeSource {
    return new SliceSource(this.hash, this.hashOffset, this.geometry.hashAreaBytes)
  }

  protected async fill(offset: number, target: Buffer, signal?: AbortSignal): Promise<void> {
    const length = target.length
    const first = Math.floor(offset / BLOCK_SIZE)
    const end = Math.ceil((offset + length) / BLOCK_SIZE)
    const known = this.known.filter((r) => r.start < end * BLOCK_SIZE && first * BLOCK_SIZE < r.end)
    if (known.length > 0) {
      this.counters.failedReads++
      this.logger.debug({ offset, length, bad: known }, 'read of known-bad blocks refused')
      throw new VerityMismatchError(this.describe(known), known)
    }
    // Whole blocks, straight into the caller's buffer when it is aligned (the block cache's is).
    const aligned = first * BLOCK_SIZE === offset && end * BLOCK_SIZE === offset + length
    const buf = aligned ? target : Buffer.allocUnsafe((end - first) * BLOCK_SIZE)
    const g = this.geometry
    const hashBlocksWanted = g.levels === 0 ? [] : range(Math.floor(first / FANOUT), Math.floor((end - 1) / FANOUT) + 1)
    const parents = await this.fetchDataAndParents(first * BLOCK_SIZE, buf, hashBlocksWanted, signal)
    const digests = await hashBlocksAsync(this.salt, buf)
    const bad: BadRange[] = []
    let why: string | undefined
    if (g.levels === 0) {
      if (!equal(digests, this.rootHash)) bad.push(this.noteBadData(0))
    } else {
      hashBlocksWanted.forEach((hb, k) => {
        const parent = parents[k]!
        const lo = Math.max(first, hb * FANOUT)
        const hi = Math.min(end, (hb + 1) * FANOUT)
        if (parent instanceof VerityMismatchError) {
          why ??= parent.message
          bad.push({ start: lo * BLOCK_SIZE, end: hi * BLOCK_SIZE })
          return
        }
        const mine = digests.subarray((lo - first) * DIGEST_SIZE, (hi - first) * DIGEST_SIZE)
        const theirs = parent.subarray((lo - hb * FANOUT) * DIGEST_SIZE, (hi - hb * FANOUT) * DIGEST_SIZE)
        if (mine.equals(theirs)) return
        // Only now, per block: which ones differ.
        for (let b = lo; b < hi; b++) {
          const at = (b - lo) * DIGEST_SIZE
          if (!equal(mine.subarray(at, at + DIGEST_SIZE), theirs.subarray(at, at + DIGEST_SIZE))) bad.push(this.noteBadData(b))
        }
      })
    }
    if (bad.length > 0) {
      // Nothing unverified may leave this layer, not even in a buffer the caller will drop.
      buf.fill(0)
      if (!aligned) target.fill(0)
      this.counters.failedReads++
      this.remember(bad)
      throw new VerityMismatchError(why ?? this.describe(bad), bad)
    }
    this.counters.verifiedBlocks += end - first
    if (!aligned) buf.copy(target, 0, offset - first * BLOCK_SIZE, offset - first * BLOCK_SIZE + length)
  }

  /**
   * The data blocks into `buf` (which may be the caller's buffer) and the level-0 hash blocks over
   * them, fetched together. When either fails the other is stopped, and both have settled before
   * the failure is thrown: a data transfer left running would go on writing unverified bytes into
   * a buffer its owner has taken back (a pooled FUSE reply buffer, a cache block given to another range).
   */
  private async fetchDataAndParents(offset: number, buf: Buffer, hashBlocks: number[], signal?: AbortSignal): Promise<HashBlockResult[]> {
    const stop = new AbortController()
    const onAbort = (): void => stop.abort(signal?.reason)
    if (signal?.aborted) onAbort()
    signal?.addEventListener('abort', onAbort, { once: true })
    try {
      const data = readInto(this.data, offset, buf, stop.signal)
      const parents = Promise.all(hashBlocks.map((i) => this.hashBlockResult(0, i)))
      // A failed hash fetch stops the data transfer at once; allSettled then waits until it has stopped.
      parents.catch((err: unknown) => stop.abort(err))
      const [d, p] = await Promise.allSettled([data, parents])
      if (p.status === 'rejected') throw p.reason
      if (d.status === 'rejected') throw d.reason
      return p.value
    } finally {
      signal?.removeEventListener('abort', onAbort)
    }
  }

  async close(): Promise<void> {
    this.failures.flush()
    this.hashCache.clear()
    await this.data.close()
    if (this.hash !== this.data) await this.hash.close()
  }

  private describe(bad: BadRange[]): string {
    const first = bad[0]!
    const blocks = (r: BadRange) => (r.end - r.start === BLOCK_SIZE ? `data block ${r.start / BLOCK_SIZE}` : `data blocks ${r.start / BLOCK_SIZE}-${r.end / BLOCK_SIZE - 1}`)
    return `${blocks(first)} (image bytes ${first.start}-${first.end - 1})${bad.length > 1 ? ` and ${bad.length - 1} more range(s)` : ''} failed dm-verity verification against verity.root_hash: the stored image was modified`
  }

  private remember(bad: BadRange[]): void {
    for (const r of bad) if (this.known.length < MAX_REMEMBERED) this.known.push(r)
  }

  private noteBadData(block: number): BadRange {
    const range = { start: block * BLOCK_SIZE, end: (block + 1) * BLOCK_SIZE }
    const msg = `data block ${block} (image bytes ${range.start}-${range.end - 1}) does not match the dm-verity hash tree pinned by verity.root_hash`
    this.failures.note(
      'data',
      block,
      msg,
      { block, offset: range.start, rootHash: this.rootHash.toString('hex') },
      `INTEGRITY VIOLATION: ${msg}. The stored image was modified (tampering, or a rollback to another version). Reads of this block fail with EIO; intact blocks are still served, each verified`,
    )
    return range
  }

  private noteBadHash(level: number, index: number): VerityMismatchError {
    const g = this.geometry
    const span = FANOUT ** (level + 1)
    const start = index * span
    const end = Math.min(g.dataBlocks, start + span)
    const bad = { start: start * BLOCK_SIZE, end: end * BLOCK_SIZE }
    const msg = `hash block ${index} of tree level ${level} (${this.where}, byte ${this.hashOffset + g.blockOffset(level, index)}) does not chain up to verity.root_hash, so data blocks ${start}-${end - 1} cannot be verified`
    const key = g.levelStart[level]! + index
    this.failures.note(
      'hash',
      key,
      msg,
      { level, index, dataBlocks: [start, end - 1] },
      `INTEGRITY VIOLATION: ${msg}. The stored hash tree was modified; reads of those blocks fail with EIO`,
    )
    return new VerityMismatchError(msg, [bad])
  }

  /** A verified hash block, or the mismatch that makes it (and what it covers) unusable. */
  private async hashBlockResult(level: number, index: number): Promise<HashBlockResult> {
    const key = this.geometry.levelStart[level]! + index
    const hit = this.hashCache.get(key)
    if (hit) {
      this.hashCache.delete(key)
      this.hashCache.set(key, hit)
      return hit
    }
    const chunk = Math.floor(index / HASH_CHUNK)
    const id = `${level}:${chunk}`
    let pending = this.inflight.get(id)
    if (!pending) {
      pending = this.fetchHashChunk(level, chunk).finally(() => this.inflight.delete(id))
      this.inflight.set(id, pending)
    }
    return (await pending)[index - chunk * HASH_CHUNK]!
  }

  /** One request for up to HASH_CHUNK blocks of a level; each is checked against its parent's entry. */
  private async fetchHashChunk(level: number, chunk: number): Promise<HashBlockResult[]> {
    const g = this.geometry
    const first = chunk * HASH_CHUNK
    const count = Math.min(HASH_CHUNK, g.levelBlocks[level]! - first)
    const top = level === g.levels - 1
    // HASH_CHUNK divides FANOUT: every block of the chunk has the same parent.
    const [bytes, parent] = await Promise.all([
      this.hash.read(this.hashOffset + g.blockOffset(level, first), count * BLOCK_SIZE),
      top ? Promise.resolve(this.rootHash) : this.hashBlockResult(level + 1, Math.floor(first / FANOUT)),
    ])
    this.counters.hashBlocksFetched += count
    const digests = top ? hashBlock(this.salt, bytes) : hashBlocks(this.salt, bytes)
    const results: HashBlockResult[] = []
    for (let k = 0; k < count; k++) {
      const index = first + k
      if (parent instanceof VerityMismatchError) {
        // Already logged and counted where the chain broke; it covers this block's span too.
        results.push(parent)
        continue
      }
      const at = top ? 0 : (index % FANOUT) * DIGEST_SIZE
      const expected = parent.subarray(at, at + DIGEST_SIZE)
      const block = bytes.subarray(k * BLOCK_SIZE, (k + 1) * BLOCK_SIZE)
      if (!equal(digests.subarray(k * DIGEST_SIZE, (k + 1) * DIGEST_SIZE), expected) || !this.paddingIsZero(level, index, block)) {
        results.push(this.noteBadHash(level, index))
        continue
      }
      const copy = Buffer.from(block)
      this.cacheHashBlock(g.levelStart[level]! + index, copy)
      results.push(copy)
    }
    return results
  }

  /** The last block of a level has entries only for what exists below it; the rest is zeros. */
  private paddingIsZero(level: number, index: number, block: Buffer): boolean {
    const g = this.geometry
    if (index !== g.levelBlocks[level]! - 1) return true
    const used = g.entriesOf(level) - index * FANOUT
    return block.subarray(used * DIGEST_SIZE).every((b) => b === 0)
  }

  private cacheHashBlock(key: number, block: Buffer): void {
    this.hashCache.set(key, block)
    while (this.hashCache.size > this.hashCacheLimit) {
      const oldest = this.hashCache.keys().next().value as number
      this.hashCache.delete(oldest)
    }
  }
}

/**
 * The root hash binds the tree's blocks but not which level of it the superblock calls the data:
 * a superblock claiming fewer blocks can present the tree's own level-0 blocks (or its top block)
 * as the image, and they verify. So the data the tree covers must be exactly everything before an
 * appended hash area, or the whole image blob, and the count pinned in the configuration if any.
 */
function checkDataSize(g: TreeGeometry, layout: { hashOffset: number } | { imageBytes: number }, pinned: number | undefined, where: string): void {
  const covers = `${where}: the superblock covers ${g.dataBlocks} data blocks`
  if (pinned !== undefined && pinned !== g.dataBlocks) {
    throw new VerityError(
      'VERITY_DATA_SIZE',
      `${covers}, but verity.data_blocks pins ${pinned}: the superblock (or the whole tree and image) was replaced; this is not the image that was published`,
    )
  }
  if ('hashOffset' in layout && layout.hashOffset !== g.dataBytes) {
    throw new VerityError(
      'VERITY_DATA_SIZE',
      `${covers} (${g.dataBytes} bytes), but the hash area starts at byte ${layout.hashOffset}: an appended tree covers everything before it (encfs pack --verity and veritysetup format --hash-offset=<data size> make such trees); the superblock was modified, or verity.hash_offset is wrong`,
    )
  }
  if ('imageBytes' in layout && layout.imageBytes !== g.dataBytes) {
    throw new VerityError(
      'VERITY_DATA_SIZE',
      `${covers} (${g.dataBytes} bytes), but the image is ${layout.imageBytes} bytes: a separate tree covers the whole image; this tree belongs to another image, or its superblock was modified`,
    )
  }
}

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from }, (_, i) => from + i)
}

function equal(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b)
}
