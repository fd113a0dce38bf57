// What dm-verity verification costs on sequential reads: the same image read with and without a
// verity section, alternated (ABAB) in one run on one machine.
//
//   npm run build && node dist/bench/verity.js [--size-mib 256] [--runs 3]
//
// Rows, each as "without" and "with" verity and their ratio (with / without, 1.00 = free):
//  - in-process from a local file: FileSource -> [VeritySource] -> BlockCache -> LuksVolume,
//    read in 1 MiB requests. Storage costs nothing here, so this is the worst case: the CPU cost of
//    hashing next to decryption.
//  - in-process from Azurite: the same chain over a BlobSource.
//  - through the mount: remotefs serving the image from Azurite, a 256 MiB file read by dd in a
//    child process from a cold mount (what an application sees).
// The target is a ratio of at least 0.90 (verification costs at most 10% of throughput).
import { mkdir, rm, stat } from 'node:fs/promises'
import { randomBytes } from 'node:crypto'
import path from 'node:path'
import yargs from 'yargs'
import { MiB, ddRead, mbps, runBench } from './harness.js'
import { startAzurite, uploadFile } from '../src/demo/azurite.js'
import { makeEncryptedImage } from '../test/helpers/images.js'
import { startSidecar, stopSidecar, waitReady, sidecarArgs } from '../test/helpers/remotefs.js'
import { tempDir } from '../test/helpers/temp.js'
import { formatImageTree } from '../src/verity/image-tree.js'
import { openSource } from '../src/storage/open-source.js'
import { BlockCache } from '../src/cache/block-cache.js'
import { VeritySource } from '../src/verity/verity-source.js'
import { IntactReads } from '../src/verity/intact-reads.js'
import { LuksVolume } from '../src/luks/volume.js'
import type { RangeSource } from '../src/storage/range-source.js'

interface Sample {
  mbps: number
  cpuMs: number
}

/** Reads a whole volume in 1 MiB requests, one after another (as FUSE asks, minus the kernel). */
async function readAll(v: RangeSource): Promise<Sample> {
  const started = performance.now()
  const cpu = process.cpuUsage()
  for (let off = 0; off < v.size; off += MiB) await v.read(off, Math.min(MiB, v.size - off))
  const used = process.cpuUsage(cpu)
  return { mbps: mbps(v.size, performance.now() - started), cpuMs: (used.user + used.system) / 1000 }
}

/** CPU time a process has used so far (user + system), in ms. */
async function cpuMsOf(pid: number): Promise<number> {
  const { readFile } = await import('node:fs/promises')
  const fields = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]!.split(' ')
  return (Number(fields[11]) + Number(fields[12])) * 10 // clock ticks of 10 ms
}

async function inProcess(image: string, hash: string | undefined, root: string, key: Buffer): Promise<Sample> {
  const source = await openSource(image)
  let data: RangeSource = source
  let verity: VeritySource | undefined
  if (hash) {
    const h = await openSource(hash)
    verity = await VeritySource.open(source, h, { rootHash: Buffer.from(root, 'hex'), hashOffset: 0 })
    data = verity
  }
  const cache = new BlockCache(data)
  const volume = await LuksVolume.open(verity ? new IntactReads(cache, verity) : cache, key)
  try {
    return await readAll(volume)
  } finally {
    await volume.close()
  }
}

function summary(samples: Sample[]): string {
  const xs = samples.map((x) => x.mbps)
  const s = [...xs].sort((a, b) => a - b)
  const median = s[Math.floor(s.length / 2)]!
  return `${median.toFixed(0).padStart(5)} (${s[0]!.toFixed(0)}-${s.at(-1)!.toFixed(0)})`
}

function median(xs: number[]): number {
  return [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
}

async function main(): Promise<void> {
  const args = yargs(process.argv.slice(2))
    .option('size-mib', { type: 'number', default: 256, describe: 'size of the file in the image' })
    .option('runs', { type: 'number', default: 3, describe: 'ABAB rounds per row' })
    .option('rows', { type: 'string', default: 'file,azurite,mount', describe: 'which rows to measure (comma-separated: file, azurite, mount)' })
    .strict()
    .parseSync()
  const log = (s: string) => process.stderr.write(`bench: ${s}\n`)
  const fileMiB = args['size-mib']

  log(`building a ${fileMiB} MiB encrypted image with cryptsetup, and its hash tree`)
  const img = await makeEncryptedImage({ fsSizeMiB: Math.ceil(fileMiB * 1.1) + 64, files: { 'big.bin': randomBytes(fileMiB * MiB) } })
  const hashFile = path.join(img.dir, 'image.verity')
  const tree = await formatImageTree(img.image, { hashOut: hashFile })
  const az = await startAzurite()
  const tmp = await tempDir('encfs-bench-verity-')
  try {
    const [{ sasUrl: imageUrl }, { sasUrl: hashUrl }] = await Promise.all([uploadFile(az, img.image, { kind: 'block' }), uploadFile(az, hashFile, { kind: 'block' })])
    const rows: { name: string; without: Sample[]; with: Sample[] }[] = []
    const abab = async (name: string, without: () => Promise<Sample>, withVerity: () => Promise<Sample>) => {
      const row = { name, without: [] as Sample[], with: [] as Sample[] }
      for (let i = 0; i < args.runs; i++) {
        log(`${name}: round ${i + 1}/${args.runs}`)
        row.without.push(await without())
        row.with.push(await withVerity())
      }
      rows.push(row)
    }
    const only = new Set(args.rows.split(','))
    if (only.has('file'))
      await abab(
        'in-process, local file',
        () => inProcess(img.image, undefined, tree.rootHash, img.key),
        () => inProcess(img.image, hashFile, tree.rootHash, img.key),
      )
    if (only.has('azurite'))
      await abab(
        'in-process, Azurite',
        () => inProcess(imageUrl, undefined, tree.rootHash, img.key),
        () => inProcess(imageUrl, hashUrl, tree.rootHash, img.key),
      )
    let n = 0
    const mounted = async (verity: boolean): Promise<Sample> => {
      const parent = path.join(tmp.dir, `m${n++}`)
      await mkdir(parent)
      const mp = path.join(parent, 'fs')
      const fs = { mount_point: mp, azure_url: imageUrl, raw_key: img.key.toString('hex'), ...(verity ? { verity: { root_hash: tree.rootHash, hash_url: hashUrl } } : {}) }
      const sidecar = await startSidecar(sidecarArgs([fs]), { args: ['--allow-raw-key'] })
      let measured: { mbps: number; cpuMs: number }
      let code: number | null
      try {
        await waitReady(sidecar, [mp])
        const cpu = await cpuMsOf(sidecar.child.pid!)
        const file = path.join(mp, 'big.bin')
        const rate = mbps((await stat(file)).size, await ddRead(file))
        measured = { mbps: rate, cpuMs: (await cpuMsOf(sidecar.child.pid!)) - cpu }
      } finally {
        // Stopped whatever happened; an exit status only matters when the measurement itself went
        // well (thrown from here it would hide the measurement's own error).
        code = await stopSidecar(sidecar)
        await rm(sidecar.logFile, { force: true })
      }
      if (code !== 0) throw new Error(`remotefs exited with ${code}`)
      return measured
    }
    if (only.has('mount'))
      await abab(
        'through the mount (dd), Azurite',
        () => mounted(false),
        () => mounted(true),
      )

    const width = Math.max(...rows.map((r) => r.name.length))
    process.stdout.write(`\nsequential reads of a ${fileMiB} MiB image, MB/s as median (min-max) of ${args.runs} ABAB rounds\n\n`)
    process.stdout.write(`${'what'.padEnd(width)}  ${'without verity'.padStart(16)}  ${'with verity'.padStart(16)}  ratio  best  CPU ms without / with (median)\n`)
    for (const r of rows) {
      const rate = (xs: Sample[]) => median(xs.map((x) => x.mbps))
      const best = (xs: Sample[]) => Math.max(...xs.map((x) => x.mbps))
      const cpu = (xs: Sample[]) => median(xs.map((x) => x.cpuMs))
      const extra = (cpu(r.with) / cpu(r.without) - 1) * 100
      process.stdout.write(
        `${r.name.padEnd(width)}  ${summary(r.without).padStart(16)}  ${summary(r.with).padStart(16)}  ${(rate(r.with) / rate(r.without)).toFixed(2).padStart(5)}  ${(best(r.with) / best(r.without)).toFixed(2).padStart(4)}  ${cpu(r.without).toFixed(0)} / ${cpu(r.with).toFixed(0)} (${extra >= 0 ? '+' : ''}${extra.toFixed(0)}%)\n`,
      )
    }
    process.stdout.write(
      '\nratio = with / without (median MB/s), best = the same for the best rounds; the target is >= 0.90.\n' +
        'CPU: the reading process (in-process rows: this one, hashing threads included; mount rows: remotefs).\n' +
        'On a shared machine the spread (min-max) says how far to trust a ratio.\n',
    )
  } finally {
    await tmp.cleanup()
    await az.stop()
    await img.cleanup()
  }
}

runBench(main)
