import { pbkdf2 } from 'node:crypto'
import { fork } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { Worker } from 'node:worker_threads'
import { ARGON2_ENGINE_MAX_KIB, HASHES, hashSize, MAX_PBKDF2_ITERATIONS, type Argon2Kdf, type Kdf } from './kdf-params.js'
import type { Pbkdf2Job, Pbkdf2Reply } from './kdf-child.js'
import type { KdfBudget } from './kdf-budget.js'
import { LuksError } from './errors.js'

/**
 * Below this much work (iterations x output blocks) PBKDF2 runs in this process's thread pool: a
 * tenth of a second here, short enough to wait for on SIGTERM. Above it, a child process that
 * can be killed at once (see src/luks/kdf-child.ts).
 */
const INLINE_PBKDF2_WORK = 2 ** 19

export interface KdfOptions {
  /** Refuse Argon2 keyslots that need more memory than this (a hostile header could ask for 4 GiB). */
  maxArgon2MemoryKiB?: number
  /** The key-derivation work one unlock may spend (see src/luks/kdf-budget.ts). */
  budget?: Partial<KdfBudget>
  signal?: AbortSignal
}

function abortError(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new LuksError('LUKS_KDF_ABORTED', 'key derivation stopped')
}

function pbkdf2InChild(job: Pbkdf2Job, signal?: AbortSignal): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = fork(fileURLToPath(new URL('./kdf-child.js', import.meta.url)), [], {
      serialization: 'advanced',
      stdio: ['ignore', 'ignore', 'ignore', 'ipc'],
      execArgv: [],
      env: {},
    })
    let settled = false
    const finish = (f: () => void): void => {
      if (settled) return
      settled = true
      signal?.removeEventListener('abort', onAbort)
      child.kill('SIGKILL')
      f()
    }
    const onAbort = (): void => finish(() => reject(abortError(signal!)))
    if (signal?.aborted) return onAbort()
    signal?.addEventListener('abort', onAbort, { once: true })
    child.once('message', (reply: Pbkdf2Reply) =>
      finish(() => {
        if (reply.ok) resolve(Buffer.from(reply.key.buffer, reply.key.byteOffset, reply.key.byteLength))
        else reject(new LuksError('LUKS_KDF_FAILED', `PBKDF2 failed: ${reply.message}`))
      }),
    )
    child.once('error', (err) => finish(() => reject(new LuksError('LUKS_KDF_FAILED', `cannot start the key derivation process: ${err.message}`, { cause: err }))))
    child.once('exit', (code, sig) => finish(() => reject(new LuksError('LUKS_KDF_FAILED', `the key derivation process ended without an answer (${sig ?? `exit ${code}`})`))))
    // A copy travels to the child, which zeroes it; ours is the caller's to zero.
    child.send({ ...job, password: new Uint8Array(job.password) } satisfies Pbkdf2Job)
  })
}

/**
 * PBKDF2 that never blocks the event loop, never surfaces a raw RangeError or OpenSSL error, and
 * can be abandoned through `signal` (a costly one runs in a child process that is killed).
 */
export async function pbkdf2Async(password: Buffer, salt: Buffer, iterations: number, length: number, hash: string, signal?: AbortSignal): Promise<Buffer> {
  const size = hashSize(hash)
  if (size === undefined)
    throw new LuksError('LUKS_KDF_UNSUPPORTED', `unsupported PBKDF2 hash "${hash}" (encfs supports ${HASHES.filter((h) => hashSize(h) !== undefined).join(', ')})`)
  if (!Number.isInteger(iterations) || iterations < 1 || iterations > MAX_PBKDF2_ITERATIONS) {
    throw new LuksError('LUKS_KDF_UNSUPPORTED', `${iterations} PBKDF2 iterations is outside what encfs can compute (1 to ${MAX_PBKDF2_ITERATIONS})`)
  }
  if (signal?.aborted) throw abortError(signal)
  if (iterations * Math.ceil(length / size) > INLINE_PBKDF2_WORK) {
    return pbkdf2InChild({ password, salt, iterations, length, hash }, signal)
  }
  return new Promise((resolve, reject) =>
    pbkdf2(password, salt, iterations, length, hash, (err, key) => {
      if (err) reject(new LuksError('LUKS_KDF_FAILED', `PBKDF2 failed: ${err.message}`, { cause: err }))
      else resolve(key)
    }),
  )
}

function argon2(kdf: Argon2Kdf, password: Buffer, length: number, signal?: AbortSignal): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL('./argon2-worker.js', import.meta.url), {
      // WebAssembly memory lives outside the V8 heap; this only bounds the worker's JS side.
      resourceLimits: { maxOldGenerationSizeMb: 64 },
    })
    // WebAssembly, unlike OpenSSL, stops when the worker is terminated.
    const onAbort = (): void => {
      void worker.terminate()
      reject(abortError(signal!))
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
    worker.postMessage({ type: kdf.type, password: pw, salt: new Uint8Array(kdf.salt), time: kdf.time, memoryKiB: kdf.memory, parallelism: kdf.cpus, length }, [pw.buffer])
  })
}

/** The Argon2 memory limit in force: the configured one, never above what the engine can do. */
export function argon2MemoryLimitKiB(opts: KdfOptions = {}): number {
  return Math.min(opts.maxArgon2MemoryKiB ?? Infinity, opts.budget?.argon2MemoryKiB ?? Infinity, ARGON2_ENGINE_MAX_KIB)
}

/** Refuses an Argon2 keyslot that needs more memory than allowed, before any is allocated. */
export function checkArgon2Memory(kdf: Argon2Kdf, keyslotId: string, opts: KdfOptions = {}): void {
  const limit = argon2MemoryLimitKiB(opts)
  if (kdf.memory <= limit) return
  const engine = limit === ARGON2_ENGINE_MAX_KIB ? ' (the most encfs can compute: its Argon2 runs in 32-bit WebAssembly)' : ''
  throw new LuksError(
    'LUKS_KDF_MEMORY',
    `keyslot ${keyslotId} needs ${Math.ceil(kdf.memory / 1024)} MiB for Argon2; the limit is ${Math.floor(limit / 1024)} MiB${engine}; add a keyslot with less memory: cryptsetup luksAddKey --pbkdf-memory ${Math.min(limit, 1024 * 1024)}`,
  )
}

/** Derives a keyslot key (docs/kdf-budget.md says what it may cost). */
export async function deriveKey(kdf: Kdf, password: Buffer, length: number, keyslotId: string, opts: KdfOptions = {}): Promise<Buffer> {
  switch (kdf.type) {
    case 'pbkdf2':
      try {
        return await pbkdf2Async(password, kdf.salt, kdf.iterations, length, kdf.hash, opts.signal)
      } catch (err) {
        if (err instanceof LuksError && err.code === 'LUKS_KDF_UNSUPPORTED') throw new LuksError(err.code, `keyslot ${keyslotId}: ${err.message}`)
        throw err
      }
    case 'argon2i':
    case 'argon2id':
      checkArgon2Memory(kdf, keyslotId, opts)
      return argon2(kdf, password, length, opts.signal)
    case 'unsupported':
      throw new LuksError('LUKS_KDF_UNSUPPORTED', `keyslot ${keyslotId}: unsupported KDF ${kdf.name}`)
  }
}
