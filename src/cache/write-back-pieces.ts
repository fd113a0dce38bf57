import { alignDown, alignUp, SECTOR, type Extent } from './extent.js'

/** Azure's largest Put Page, and the grid write-backs are cut on. */
export const MAX_WRITE = 4 * 1024 * 1024

/** One write-back: `length` bytes at `at`, gathered from the dirty parts of adjacent ranges. */
export interface Piece {
  at: number
  parts: { e: Extent; lo: number; hi: number }[]
  length: number
}

/**
 * Cuts dirty ranges into write-backs: adjacent ranges are joined (ext4 writes a file in many
 * requests) and every piece is 512-aligned, as page blobs take it, and within one 4 MiB cell of
 * the blob (a whole cell is a full piece). Cut on a fixed grid, a hole only holds back its own
 * piece (docs/data-path.md, "The write path").
 */
export function writeBackPieces(dirty: Iterable<Extent>): Piece[] {
  const list = [...dirty].sort((a, b) => a.start - b.start)
  const pieces: Piece[] = []
  let cur: Piece | undefined
  for (const e of list) {
    const d = e.dirty!
    let lo = alignDown(d.lo, SECTOR)
    const hi = Math.min(alignUp(d.hi, SECTOR), e.length)
    // Joined with the previous piece only when it ends where this range's dirty part starts.
    if (!cur || cur.at + cur.length !== e.start + lo || lo !== 0) cur = undefined
    while (lo < hi) {
      const room = MAX_WRITE - ((e.start + lo) % MAX_WRITE)
      if (!cur || room === MAX_WRITE) {
        cur = { at: e.start + lo, parts: [], length: 0 }
        pieces.push(cur)
      }
      const take = Math.min(hi - lo, room)
      cur.parts.push({ e, lo, hi: lo + take })
      cur.length += take
      lo += take
    }
    // Only a range dirty to its end can be followed by the next one.
    if (hi !== e.length) cur = undefined
  }
  return pieces
}
