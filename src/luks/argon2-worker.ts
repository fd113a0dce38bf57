// Runs Argon2 off the main thread: a 1 GiB derivation takes seconds in WebAssembly, and a
// process that serves FUSE must never stall its event loop (docs/architecture.md#never-block-the-main-thread).
import { parentPort } from 'node:worker_threads'
import { argon2i, argon2id } from 'hash-wasm'

export interface Argon2Request {
  type: 'argon2i' | 'argon2id'
  password: Uint8Array
  salt: Uint8Array
  time: number
  memoryKiB: number
  parallelism: number
  length: number
}

if (!parentPort) throw new Error('argon2-worker must run as a worker thread')
const port = parentPort

port.once('message', (req: Argon2Request) => {
  const fn = req.type === 'argon2i' ? argon2i : argon2id
  fn({
    password: req.password,
    salt: req.salt,
    iterations: req.time,
    memorySize: req.memoryKiB,
    parallelism: req.parallelism,
    hashLength: req.length,
    outputType: 'binary',
  }).then(
    (out) => {
      req.password.fill(0)
      port.postMessage({ ok: true, key: out }, [out.buffer as ArrayBuffer])
    },
    (err: unknown) => {
      req.password.fill(0)
      port.postMessage({ ok: false, message: err instanceof Error ? err.message : String(err) })
    },
  )
})
