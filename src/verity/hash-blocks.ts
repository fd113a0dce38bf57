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
  for (let i = 0; i < n; i++)
    base
      .copy()
      .update(input.subarray(i * BLOCK_SIZE, (i + 1) * BLOCK_SIZE))
      .digest()
      .copy(target, i * DIGEST_SIZE)
  return target
}

/** Below this, a thread-pool hop costs more than hashing on the main thread. */
const ASYNC_MIN_BYTES = 256 * 1024

/**
 * hashBlocks off the main thread (the native addon on the libuv pool) for large inputs, so that
 * verifying one fetch overlaps with decrypting and serving the previous one; `input` must stay
 * untouched until it resolves.
 */
export async function hashBlocksAsync(salt: Buffer, input: Buffer): Promise<Buffer> {
  const native = optionalAddon()
  if (input.length < ASYNC_MIN_BYTES || !native || typeof native.sha256BlocksAsync !== 'function') return hashBlocks(salt, input)
  if (input.length % BLOCK_SIZE !== 0) throw new RangeError(`${input.length} bytes is not whole ${BLOCK_SIZE}-byte blocks`)
  const out = Buffer.allocUnsafe((input.length / BLOCK_SIZE) * DIGEST_SIZE)
  await native.sha256BlocksAsync(salt, input, BLOCK_SIZE, out)
  return out
}

/** SHA-256(salt || block) of one block. */
export function hashBlock(salt: Buffer, block: Buffer): Buffer {
  return createHash('sha256').update(salt).update(block).digest()
}
