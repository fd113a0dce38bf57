import { createHash } from 'node:crypto'
import { optionalAddon } from '../native/addon.js'
import { BLOCK_SIZE, DIGEST_SIZE } from './superblock.js'

/**
 * SHA-256(salt || block) for every 4 KiB block of `input`, 32 bytes each, into `out` (or a new
 * buffer). One native call per request when the addon is built (no allocation per block, which
 * the hot path must avoid); node:crypto otherwise.
 */
export function hashBlocks(salt: Buffer, input: Buffer, out?: Buffer): Buffer {
  if (input.length % BLOCK_SIZE !== 0) throw new RangeError(`${input.length} bytes is not whole ${BLOCK_SIZE}-byte blocks`)
  const n = input.length / BLOCK_SIZE
  const target = out ?? Buffer.allocUnsafe(n * DIGEST_SIZE)
  const native = optionalAddon()
  if (native && typeof native.sha256Blocks === 'function') {
    native.sha256Blocks(salt, input, BLOCK_SIZE, target)
    return target
  }
  const base = createHash('sha256').update(salt)
  for (let i = 0; i < n; i++) base.copy().update(input.subarray(i * BLOCK_SIZE, (i + 1) * BLOCK_SIZE)).digest().copy(target, i * DIGEST_SIZE)
  return target
}

/** SHA-256(salt || block) of one block. */
export function hashBlock(salt: Buffer, block: Buffer): Buffer {
  return createHash('sha256').update(salt).update(block).digest()
}
