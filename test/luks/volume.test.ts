// LuksVolume, the userspace unlock, as a RangeSource: over a file, and over the block cache as
// remotefs stacks it; read-only and read-write. Images from encfs's own writer (random payload).
import { copyFile } from 'node:fs/promises'
import path from 'node:path'
import { FileSource } from '../../src/storage/file-source.js'
import { cacheOver } from '../../src/cache/cache-over.js'
import { LuksVolume } from '../../src/luks/volume.js'
import { makeSmallImage } from '../helpers/small-image.js'
import { tempDir } from '../helpers/temp.js'
import { conformance, type Opened } from '../storage/conformance.js'

/** A volume over a fresh small image; `persisted` decrypts what the file holds after close. */
async function volume(o: { sectorSize: 512 | 4096; writable: boolean; cached: boolean }): Promise<Opened> {
  const tmp = await tempDir('encfs-volume-')
  const img = await makeSmallImage(tmp.dir, { sectorSize: o.sectorSize, payloadBytes: 3 * 1024 * 1024 })
  const file = o.writable ? await FileSource.open(img.file, { writable: true }) : await FileSource.open(img.file)
  const below = o.cached ? cacheOver(file, { blockSize: 256 * 1024, memoryBytes: 1024 * 1024, readaheadBlocks: 1 }) : file
  const source = await LuksVolume.open(below, img.key)
  const persisted = async () => {
    const copy = path.join(tmp.dir, 'persisted.img')
    await copyFile(img.file, copy)
    const again = await LuksVolume.open(await FileSource.open(copy), img.key)
    try {
      return await again.read(0, again.size)
    } finally {
      await again.close()
    }
  }
  return { source, bytes: img.plaintext, persisted, cleanup: () => tmp.cleanup() }
}

conformance({ name: 'LuksVolume (4096-byte sectors) over a FileSource', open: () => volume({ sectorSize: 4096, writable: false, cached: false }) })
conformance({ name: 'LuksVolume (512-byte sectors) over a BlockCache', open: () => volume({ sectorSize: 512, writable: false, cached: true }) })
conformance({ name: 'WritableLuksVolume (4096-byte sectors) over a WritableFileSource', writable: true, open: () => volume({ sectorSize: 4096, writable: true, cached: false }) })
conformance({ name: 'WritableLuksVolume (512-byte sectors) over a WritableBlockCache', writable: true, open: () => volume({ sectorSize: 512, writable: true, cached: true }) })
