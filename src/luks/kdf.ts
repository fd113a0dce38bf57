import { pbkdf2 } from 'node:crypto'
import { Worker } from 'node:worker_threads'
import type { Argon2Kdf, Kdf, Pbkdf2Kdf } from './metadata.js'
import { LuksError } from './errors.js'

/** cryptsetup's own ceiling for Argon2 memory (4 GiB); a header asking more is refused. */
export const MAX_ARGON2_MEMORY_KIB = 4 * 1024 * 1024

export interface KdfOptions {
  /** Refuse Argon2 keyslots that need more memory than this (a hostile header could ask for 4 GiB). */
  maxArgon2MemoryKiB?: number
  signal?: AbortSignal
}

export function pbkdf2Async(password: Buffer, salt: Buffer, iterations: number, length: number, hash: string): Promise<Buffer> {
  return new Promise((resolve, reject) => pbkdf2(password, salt, iterations, length, hash, (err, key) => (err ? reject(err) : resolve(key))))
}

function argon2(kdf: Argon2Kdf, password: Buffer, length: number, signal?: AbortSignal): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL('./argon2-worker.js', import.meta.url), {
      // WebAssembly memory lives outside the V8 heap; this only bounds the worker's JS side.
      resourceLimits: { maxOldGenerationSizeMb: 64 },
    })
    const onAbort = (): void => {
      void worker.terminate()
      reject(signal?.reason instanceof Error ? signal.reason : new Error('aborted'))
    }
    if (signal?.aborted) return onAbort()
    signal?.addEventListener('abort', onAbort, { once: true })
    const done = (): void => {
      signal?.removeEventListener('abort', onAbort)
      void worker.terminate()
    }
    worker.once('message', (msg: { ok: true; key: Uint8Array } | { ok: false; message: string }) => {
      done()
      if (msg.ok) resolve(Buffer.from(msg.key.buffer, msg.key.byteOffset, msg.key.byteLength))
      else reject(new LuksError('LUKS_KDF_FAILED', `Argon2 key derivation failed: ${msg.message}`))
    })
    worker.once('error', (err) => {
      done()
      reject(new LuksError('LUKS_KDF_FAILED', `Argon2 key derivation failed: ${err.message}`, { cause: err }))
    })
    // A copy goes to the worker, which zeroes it; ours is the caller's to zero.
    const pw = new Uint8Array(password)
    worker.postMessage(
      { type: kdf.type, password: pw, salt: new Uint8Array(kdf.salt), time: kdf.time, memoryKiB: kdf.memory, parallelism: kdf.cpus, length },
      [pw.buffer],
    )
  })
}

/** Derives a keyslot key (spec §3.3 step 1). */
export async function deriveKey(kdf: Kdf, password: Buffer, length: number, keyslotId: string, opts: KdfOptions = {}): Promise<Buffer> {
  if (kdf.type === 'pbkdf2') {
    const k = kdf as Pbkdf2Kdf
    return pbkdf2Async(password, k.salt, k.iterations, length, k.hash)
  }
  if (kdf.type === 'argon2i' || kdf.type === 'argon2id') {
    const k = kdf as Argon2Kdf
    const limit = Math.min(opts.maxArgon2MemoryKiB ?? MAX_ARGON2_MEMORY_KIB, MAX_ARGON2_MEMORY_KIB)
    if (k.memory > limit) {
      throw new LuksError('LUKS_KDF_MEMORY', `keyslot ${keyslotId} needs ${Math.ceil(k.memory / 1024)} MiB for Argon2; the limit is ${Math.floor(limit / 1024)} MiB (add a keyslot with less memory: cryptsetup luksAddKey --pbkdf-memory)`)
    }
    return argon2(k, password, length, opts.signal)
  }
  throw new LuksError('LUKS_KDF_UNSUPPORTED', `keyslot ${keyslotId}: unsupported KDF ${kdf.type}`)
}
