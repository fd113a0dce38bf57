// Sequential read throughput of a file inside a mounted encrypted image served from Azurite, next
// to the raw download rate of the same blob with @azure/storage-blob, measured in one run.
//
//   npm run bench            (or: node dist/bench/read-throughput.js --size-mib 256)
//
// Rows: raw downloadToBuffer at several block sizes and concurrencies (the best is the
// reference), the Go azmount strategy (one 512 KiB range at a time), and remotefs mounted with
// several block-cache settings, read by `dd` in a child process from a cold mount. The ratio
// column divides by the best raw rate. Everything shares the machine's cores with Azurite.
import { mkdir, rm, stat } from 'node:fs/promises'
import { randomBytes } from 'node:crypto'
import path from 'node:path'
import { BlobClient } from '@azure/storage-blob'
import yargs from 'yargs'
import { ddRead, mbps, runBench } from './measure.js'
import { startAzurite, uploadFile } from '../src/demo/azurite.js'
import { makeEncryptedImage } from '../src/demo/test-image.js'
import { startSidecar, stopSidecar, waitReady, sidecarArgs, tempDir } from '../test/helpers/remotefs.js'

const MiB = 1024 * 1024

interface Row { name: string; mbps: number; note?: string }


async function timeRaw(url: string, size: number, blockSize: number, concurrency: number): Promise<number> {
  const client = new BlobClient(url)
  const started = performance.now()
  await client.downloadToBuffer(0, size, { blockSize, concurrency })
  return mbps(size, performance.now() - started)
}

/** What Go's azmount does on a cold sequential read: one 512 KiB ranged GET after another. */
async function timeGoLike(url: string, size: number): Promise<number> {
  const client = new BlobClient(url)
  const block = 512 * 1024
  const started = performance.now()
  for (let off = 0; off < size; off += block) await client.downloadToBuffer(off, Math.min(block, size - off))
  return mbps(size, performance.now() - started)
}


async function peakRssMiB(pid: number): Promise<number> {
  const { readFile } = await import('node:fs/promises')
  const status = await readFile(`/proc/${pid}/status`, 'utf8')
  const kb = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0)
  return Math.round(kb / 1024)
}

async function main(): Promise<void> {
  const args = yargs(process.argv.slice(2))
    .option('size-mib', { type: 'number', default: 256, describe: 'size of the file read through the mount' })
    .option('runs', { type: 'number', default: 1, describe: 'repeat each measurement and keep the best' })
    .strict().parseSync()
  const fileMiB = args['size-mib']
  const log = (s: string) => process.stderr.write(`bench: ${s}\n`)

  log(`building a ${fileMiB} MiB encrypted image with cryptsetup`)
  const img = await makeEncryptedImage({ fsSizeMiB: Math.ceil(fileMiB * 1.1) + 64, files: { 'big.bin': randomBytes(fileMiB * MiB) } })
  const az = await startAzurite()
  const tmp = await tempDir('encfs-bench-')
  try {
    log('uploading it to Azurite as a block blob')
    const { sasUrl } = await uploadFile(az, img.image, { kind: 'block' })
    const size = (await stat(img.image)).size
    const rows: Row[] = []
    const best = async (f: () => Promise<number>) => {
      let top = 0
      for (let i = 0; i < args.runs; i++) top = Math.max(top, await f())
      return top
    }

    for (const [bs, c] of [[4, 4], [8, 4], [8, 8], [16, 4], [16, 8]] as const) {
      log(`raw download, ${bs} MiB blocks x ${c}`)
      rows.push({ name: `raw download ${bs} MiB x ${c}`, mbps: await best(() => timeRaw(sasUrl, size, bs * MiB, c)) })
    }
    const raw = rows.reduce((a, b) => (b.mbps > a.mbps ? b : a))
    log('Go azmount strategy (512 KiB ranges, one at a time)')
    rows.push({ name: 'Go azmount-like: 512 KiB ranges, serial', mbps: await best(() => timeGoLike(sasUrl, size)) })

    const settings: [string, Record<string, number> | undefined][] = [
      ['default (8 MiB blocks, readahead 4)', undefined],
      ['1 MiB blocks, readahead 16', { block_size_kib: 1024, readahead_blocks: 16 }],
      ['2 MiB blocks, readahead 8', { block_size_kib: 2048, readahead_blocks: 8 }],
      ['4 MiB blocks, readahead 8', { block_size_kib: 4096, readahead_blocks: 8 }],
      ['512 KiB blocks, no readahead (Go-like)', { block_size_kib: 512, readahead_blocks: 0, memory_mib: 16 }],
    ]
    let n = 0
    for (const [name, cache] of settings) {
      log(`mounted read, cache ${name}`)
      let top = 0
      let rss = 0
      for (let i = 0; i < args.runs; i++) {
        const parent = path.join(tmp.dir, `m${n++}`)
        await mkdir(parent)
        const mp = path.join(parent, 'fs')
        const sidecar = await startSidecar(sidecarArgs([{ mount_point: mp, azure_url: sasUrl, raw_key: img.key.toString('hex'), ...(cache ? { cache } : {}) }]), { args: ['--allow-raw-key'] })
        try {
          await waitReady(sidecar, [mp])
          top = Math.max(top, await ddRead(path.join(mp, 'big.bin')))
          rss = Math.max(rss, await peakRssMiB(sidecar.child.pid!))
        } finally {
          const code = await stopSidecar(sidecar)
          await rm(sidecar.logFile, { force: true })
          if (code !== 0) throw new Error(`remotefs exited with ${code}`)
        }
      }
      rows.push({ name: `mounted, ${name}`, mbps: top, note: `remotefs peak RSS ${rss} MiB` })
    }

    const width = Math.max(...rows.map((r) => r.name.length))
    process.stdout.write(`\nsequential read of a ${fileMiB} MiB file; blob ${(size / MiB).toFixed(0)} MiB; reference = ${raw.name}\n\n`)
    process.stdout.write(`${'what'.padEnd(width)}  ${'MB/s'.padStart(7)}  ${'ratio'.padStart(6)}\n`)
    for (const r of rows) {
      process.stdout.write(`${r.name.padEnd(width)}  ${r.mbps.toFixed(0).padStart(7)}  ${(r.mbps / raw.mbps).toFixed(2).padStart(6)}${r.note ? `  ${r.note}` : ''}\n`)
    }
    const mounted = rows.find((r) => r.name.startsWith('mounted, default'))!
    const go = rows.find((r) => r.name.startsWith('Go azmount-like'))!
    process.stdout.write(`\nmounted (default) / best raw download: ${(mounted.mbps / raw.mbps).toFixed(2)}\n`)
    process.stdout.write(`mounted (default) / Go azmount-like strategy: ${(mounted.mbps / go.mbps).toFixed(2)}\n`)
  } finally {
    await tmp.cleanup()
    await az.stop()
    await img.cleanup()
  }
}

runBench(main)
