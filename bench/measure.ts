// What the bench scripts measure with: MB/s, and `dd` reading a file in a child process as an
// application container would.
import { spawn } from 'node:child_process'
import { stat } from 'node:fs/promises'

export function mbps(bytes: number, ms: number): number {
  return bytes / 1e6 / (ms / 1000)
}

/** `dd` in a child process, as an application container reads: returns MB/s of the whole file. */
export function ddRead(file: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const started = performance.now()
    const child = spawn('dd', [`if=${file}`, 'of=/dev/null', 'bs=1M'], { stdio: ['ignore', 'ignore', 'pipe'] })
    let err = ''
    child.stderr.on('data', (d: Buffer) => { err += d.toString() })
    child.on('exit', async (code) => {
      const ms = performance.now() - started
      if (code !== 0) return reject(new Error(`dd failed: ${err}`))
      resolve(mbps((await stat(file)).size, ms))
    })
  })
}

/** Runs a bench's main: a failure is one message on stderr and a non-zero exit. */
export function runBench(main: () => Promise<void>): void {
  main().catch((err: unknown) => {
    process.stderr.write(`bench failed: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`)
    process.exit(1)
  })
}
