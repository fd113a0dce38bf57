// The storage profiles every read row runs under: Azurite on loopback (a GET's first byte in
// microseconds), and Azurite behind the latency proxy (bench/latency-proxy.ts), as storage is
// from a VM. See docs/data-path.md#the-latency-profile for the numbers and why they were chosen.
import { spawn } from 'node:child_process'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { through, type Scenario } from './scenario.js'

/** 10 ms before every request reaches storage: what a ranged GET's first byte costs from a VM. */
export const LATENCY_DELAY_MS = 10
/** Per connection: Azure's published throughput target of a single page blob (60 MiB/s). */
export const LATENCY_MIB_PER_SECOND = 60

export interface Profile {
  scn: Scenario
  /** How the bench prints it. */
  title: string
  stop(): Promise<void>
}

export function loopback(scn: Scenario): Profile {
  return { scn, title: 'loopback (Azurite on 127.0.0.1)', stop: async () => {} }
}

/** Starts the latency proxy in a child process in front of Azurite. */
export async function latency(scn: Scenario, delayMs = LATENCY_DELAY_MS, mibPerSecond = LATENCY_MIB_PER_SECOND): Promise<Profile> {
  const script = path.join(path.dirname(fileURLToPath(import.meta.url)), 'latency-proxy.js')
  const child = spawn(process.execPath, [script, '--target-port', new URL(scn.az.blobEndpoint).port, '--delay-ms', String(delayMs), '--mib-per-second', String(mibPerSecond)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  const port = await new Promise<number>((resolve, reject) => {
    let out = ''
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString()
      const line = out.split('\n')[0]
      if (out.includes('\n')) resolve((JSON.parse(line!) as { port: number }).port)
    })
    child.once('exit', (code) => reject(new Error(`the latency proxy exited (${code}) before listening`)))
  })
  return {
    scn: through(scn, 'latency', port),
    title: `storage latency (${delayMs} ms to every request, ${mibPerSecond} MiB/s per connection, proxy pid ${child.pid})`,
    async stop() {
      child.kill('SIGTERM')
      const t = setTimeout(() => child.kill('SIGKILL'), 5_000)
      await exited
      clearTimeout(t)
    },
  }
}
