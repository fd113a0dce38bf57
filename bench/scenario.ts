// What every measurement shares: one encrypted image (a big file for sequential reads, another
// for random reads, free space for the write test) in Azurite as a block blob (read-only rows) and
// as a page blob (read-write rows).
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm, stat, writeFile, mkdir } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { startAzurite, uploadFile, type Azurite } from '../src/demo/azurite.js'
import { makeEncryptedImage, type TestImage } from '../test/helpers/images.js'
import { MiB } from './harness.js'

export interface Sizes {
  /** The file read sequentially. */
  bigMiB: number
  /** The file read at random. */
  randMiB: number
  /** Written and fsynced by the read-write row. */
  writeMiB: number
}

export interface Scenario {
  /** Which storage profile the URLs below lead to: Azurite on loopback, or behind the latency proxy. */
  profile: string
  az: Azurite
  /** The blob service endpoint for clients that take one (rclone), through the profile. */
  blobEndpoint: string
  image: TestImage
  /** Block blob (read-only rows). */
  blockUrl: string
  blockBlob: { container: string; name: string }
  /** Page blob with a read-write SAS (read-write rows). */
  pageUrl: string
  blobBytes: number
  sizes: Sizes
  /** Scratch space: mount parents, the write source. */
  dir: string
  /** Random bytes to write, on tmpfs when there is one so dropping caches does not touch them. */
  writeSource: string
  cleanup(): Promise<void>
}

export async function buildScenario(sizes: Sizes, log: (s: string) => void): Promise<Scenario> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'encfs-bench-'))
  const cleanups: (() => Promise<void>)[] = [() => rm(dir, { recursive: true, force: true })]
  const cleanup = async () => {
    for (const c of cleanups.reverse()) await c().catch(() => {})
  }
  try {
    const fsMiB = sizes.bigMiB + sizes.randMiB + sizes.writeMiB + 48 + Math.ceil((sizes.bigMiB + sizes.randMiB + sizes.writeMiB) / 20)
    log(`building a ${fsMiB} MiB ext4 image (big.bin ${sizes.bigMiB} MiB, rand.bin ${sizes.randMiB} MiB) encrypted by cryptsetup`)
    const image = await makeEncryptedImage({ fsSizeMiB: fsMiB, files: { 'big.bin': randomBytes(sizes.bigMiB * MiB), 'rand.bin': randomBytes(sizes.randMiB * MiB) } })
    cleanups.push(() => image.cleanup())
    const az = await startAzurite()
    cleanups.push(() => az.stop())
    log('uploading it to Azurite as a block blob and as a page blob')
    const blockName = `bench-${Date.now()}.img`
    const block = await uploadFile(az, image.image, { kind: 'block', container: 'bench', blob: blockName })
    const page = await uploadFile(az, image.image, { kind: 'page', container: 'bench', blob: `rw-${blockName}` })
    const shm = await stat('/dev/shm').then(
      (s) => s.isDirectory(),
      () => false,
    )
    const srcDir = shm ? await mkdtemp('/dev/shm/encfs-bench-') : path.join(dir, 'src')
    await mkdir(srcDir, { recursive: true })
    if (shm) cleanups.push(() => rm(srcDir, { recursive: true, force: true }))
    const writeSource = path.join(srcDir, 'write.bin')
    await writeFile(writeSource, randomBytes(sizes.writeMiB * MiB))
    return {
      profile: 'loopback',
      az,
      blobEndpoint: az.blobEndpoint,
      image,
      blockUrl: block.sasUrl,
      blockBlob: { container: 'bench', name: blockName },
      pageUrl: page.sasUrl,
      blobBytes: (await stat(image.image)).size,
      sizes,
      dir,
      writeSource,
      cleanup,
    }
  } catch (err) {
    await cleanup()
    throw err
  }
}

/** The same scenario with every URL through a proxy on `port` (the storage-latency profile). */
export function through(scn: Scenario, profile: string, port: number): Scenario {
  const via = (u: string) => {
    const url = new URL(u)
    url.port = String(port)
    return url.toString()
  }
  return { ...scn, profile, blockUrl: via(scn.blockUrl), pageUrl: via(scn.pageUrl), blobEndpoint: via(scn.blobEndpoint).replace(/\/$/, '') }
}
