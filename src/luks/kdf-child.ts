// Runs one PBKDF2 for src/luks/kdf.ts in a process of its own. OpenSSL's PBKDF2 cannot be
// interrupted once it runs in a thread (even process.exit() waits for it), so a derivation that
// may take seconds runs here, where the parent can end it at once with SIGKILL.
import { pbkdf2 } from 'node:crypto'

export interface Pbkdf2Job {
  password: Uint8Array
  salt: Uint8Array
  iterations: number
  length: number
  hash: string
}

export type Pbkdf2Reply = { ok: true; key: Uint8Array } | { ok: false; message: string }

if (!process.send) throw new Error('kdf-child must be started by src/luks/kdf.ts (fork with an IPC channel)')
const send = process.send.bind(process)

// The parent died (SIGKILL, OOM): the derivation is running in the thread pool, which exit()
// would wait for, so leave at once.
process.on('disconnect', () => process.kill(process.pid, 'SIGKILL'))

process.once('message', (job: Pbkdf2Job) => {
  pbkdf2(job.password, job.salt, job.iterations, job.length, job.hash, (err, key) => {
    job.password.fill(0)
    const reply: Pbkdf2Reply = err ? { ok: false, message: err.message } : { ok: true, key }
    send(reply, () => key?.fill(0))
  })
})
