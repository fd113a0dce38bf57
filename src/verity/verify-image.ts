import { silentLogger, type Logger } from '../log/logger.js'
import type { VeritySource } from './verity-source.js'
import { VerityMismatchError, type BadRange } from './errors.js'

export interface ImageCheck {
  dataBlocks: number
  bad: BadRange[]
}

/**
 * Reads the whole data area through a VeritySource (which checks every block) and collects what
 * fails instead of stopping at it: `encfs verify` lists every modified range.
 */
export async function verifyWholeImage(v: VeritySource, o: { logger?: Logger; chunkBytes?: number } = {}): Promise<ImageCheck> {
  const logger = o.logger ?? silentLogger
  const chunk = o.chunkBytes ?? 8 * 1024 * 1024
  const bad: BadRange[] = []
  let lastLog = Date.now()
  for (let off = 0; off < v.size; off += chunk) {
    const len = Math.min(chunk, v.size - off)
    try {
      await v.read(off, len)
    } catch (err) {
      if (!(err instanceof VerityMismatchError)) throw err
      for (const r of err.bad) {
        const prev = bad.at(-1)
        if (prev && prev.end >= r.start) prev.end = Math.max(prev.end, r.end)
        else bad.push({ ...r })
      }
    }
    if (Date.now() - lastLog > 5000) {
      logger.info({ bytes: off + len, of: v.size }, 'verifying')
      lastLog = Date.now()
    }
  }
  return { dataBlocks: v.geometry.dataBlocks, bad }
}
