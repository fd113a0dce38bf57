// The raw clients every mounted row is divided by: the same blob read straight from storage by
// the Azure SDK, the SDK's HTTP pipeline (RangedGet), the project's libcurl fetcher and the curl
// command line, each with parallel ranged GETs.
import { BlobClient } from '@azure/storage-blob'
import { spawn } from 'node:child_process'
import { rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { RangedGet } from '../src/storage/ranged-get.js'
import { NativeRangedGet } from '../src/storage/native-ranged-get.js'
import { mbps } from './harness.js'

export type RawKind = 'sdk' | 'get' | 'native' | 'curl'

export const RAW_CLIENT_NAMES: Record<RawKind, string> = {
  sdk: 'Azure SDK downloadToBuffer',
  get: 'RangedGet (SDK pipeline)',
  native: 'libcurl (native fetcher, in process)',
  curl: 'curl CLI --parallel',
}

/** The download of `bytes` of the blob at `url` by `kind`, `range` bytes per GET, `concurrency` at a time: MB/s. */
export function rawParallel(kind: RawKind, url: string, bytes: number, range: number, concurrency: number, into: Buffer): Promise<number> {
  switch (kind) {
    case 'sdk':
      return rawDownload(url, bytes, range, concurrency, into)
    case 'get':
      return pipelineRanges(url, bytes, range, concurrency, into)
    case 'native':
      return nativeRanges(url, bytes, range, concurrency, into)
    case 'curl':
      return curlRanges(url, bytes, range, concurrency)
  }
}

/** The SDK's parallel download (downloadToBuffer), the reference every streaming row divides by. */
export async function rawDownload(url: string, bytes: number, blockSize: number, concurrency: number, into: Buffer): Promise<number> {
  const client = new BlobClient(url)
  const started = performance.now()
  await client.downloadToBuffer(into, 0, bytes, { blockSize, concurrency })
  return mbps(bytes, performance.now() - started)
}

/** Ranged GETs of `range` bytes, `concurrency` at a time, each body copied into one buffer. */
async function parallelRanges(bytes: number, range: number, concurrency: number, get: (offset: number, length: number) => Promise<void>): Promise<number> {
  let next = 0
  const started = performance.now()
  const worker = async () => {
    while (next < bytes) {
      const off = next
      next += range
      await get(off, Math.min(range, bytes - off))
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker))
  return mbps(bytes, performance.now() - started)
}

/** BlobClient.download() per range (what BlobSource used before RangedGet), the body copied chunk by chunk. */
export async function sdkDownloadRanges(url: string, bytes: number, range: number, concurrency: number, into: Buffer): Promise<number> {
  const client = new BlobClient(url)
  return parallelRanges(bytes, range, concurrency, async (off, len) => {
    const res = await client.download(off, len)
    let pos = off
    for await (const chunk of res.readableStreamBody as AsyncIterable<Buffer>) {
      chunk.copy(into, pos)
      pos += chunk.length
    }
  })
}

/** RangedGet (what BlobSource reads with): one GET per range straight through the SDK's HTTP pipeline. */
export async function pipelineRanges(url: string, bytes: number, range: number, concurrency: number, into: Buffer): Promise<number> {
  const get = new RangedGet(url)
  return parallelRanges(bytes, range, concurrency, (off, len) => get.readInto(off, into.subarray(off, off + len)))
}

/** The libcurl fetcher (native/http) alone, outside remotefs: what the fastest client here downloads. */
export async function nativeRanges(url: string, bytes: number, range: number, concurrency: number, into: Buffer): Promise<number> {
  const get = new NativeRangedGet(url)
  return parallelRanges(bytes, range, concurrency, (off, len) => get.readInto(off, into.subarray(off, off + len)))
}

/** What Go's azmount does on a cold sequential read: one 512 KiB ranged GET after another. */
export async function goSerial(url: string, bytes: number, into: Buffer): Promise<number> {
  return sdkDownloadRanges(url, bytes, 512 * 1024, 1, into)
}

/**
 * The curl command line (libcurl in a process of its own, no JavaScript anywhere): one ranged
 * GET per `range`, `--parallel-max concurrency` at a time on kept-alive connections, bodies to
 * /dev/null. Timed from spawn to exit, as dd is for the mounted rows.
 */
export async function curlRanges(url: string, bytes: number, range: number, concurrency: number): Promise<number> {
  const config = path.join(os.tmpdir(), `encfs-bench-curl-${process.pid}-${Date.now()}.conf`)
  const lines: string[] = []
  for (let off = 0; off < bytes; off += range) lines.push(`url = "${url}"`, `range = "${off}-${Math.min(bytes, off + range) - 1}"`, 'output = "/dev/null"')
  await writeFile(config, `${lines.join('\n')}\n`, { mode: 0o600 })
  try {
    const started = performance.now()
    await new Promise<void>((resolve, reject) => {
      const child = spawn('curl', ['--silent', '--show-error', '--fail', '--parallel', '--parallel-max', String(concurrency), '--config', config], {
        stdio: ['ignore', 'ignore', 'pipe'],
      })
      let err = ''
      child.stderr.on('data', (d: Buffer) => {
        err += d.toString()
      })
      child.on('error', reject)
      child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`curl --parallel failed (${code}): ${err.trim()}`))))
    })
    return mbps(bytes, performance.now() - started)
  } finally {
    await rm(config, { force: true })
  }
}

/** Random 4 KiB ranged GETs straight to storage, `concurrency` at a time, for `seconds`: IOPS. */
export async function rawRandom4k(url: string, span: number, seconds: number, concurrency: number, client: 'sdk' | 'pipeline' | 'native'): Promise<number> {
  const sdk = new BlobClient(url)
  const get = client === 'native' ? new NativeRangedGet(url) : new RangedGet(url)
  const end = performance.now() + seconds * 1000
  let done = 0
  const started = performance.now()
  const worker = async () => {
    const buf = Buffer.alloc(4096)
    while (performance.now() < end) {
      const off = Math.floor(Math.random() * (span / 4096)) * 4096
      if (client !== 'sdk') await get.readInto(off, buf)
      else {
        const res = await sdk.download(off, 4096)
        for await (const _ of res.readableStreamBody as AsyncIterable<Buffer>) void _
      }
      done++
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker))
  return done / ((performance.now() - started) / 1000)
}

/** Milliseconds from sending one 4 KiB ranged GET (libcurl, a kept-alive connection) to having its answer: one GET's latency. */
export async function oneGetMs(url: string, span: number, samples = 5): Promise<number[]> {
  const get = new NativeRangedGet(url)
  const buf = Buffer.alloc(4096)
  await get.readInto(0, buf)
  const out: number[] = []
  for (let i = 0; i < samples; i++) {
    const off = Math.floor(Math.random() * (span / 4096)) * 4096
    const started = performance.now()
    await get.readInto(off, buf)
    out.push(performance.now() - started)
  }
  return out
}
