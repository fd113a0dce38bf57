// Writes through the userspace volume must be what dm-crypt would have written: checked by
// letting real cryptsetup decrypt the result (docs/luks2.md#reference-images, W3).
import test from 'ava'
import { copyFile, readFile } from 'node:fs/promises'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { randomBytes } from 'node:crypto'
import path from 'node:path'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { FileSource } from '../../src/storage/file-source.js'
import { LuksVolume } from '../../src/luks/volume.js'
import { makeEncryptedImage, type TestImage } from '../helpers/images.js'

const exec = promisify(execFile)
const env = { ...process.env, PATH: `${process.env.PATH}:/usr/sbin:/sbin` }
const images: TestImage[] = []
test.after.always(async () => {
  for (const img of images) await img.cleanup()
})

for (const sectorSize of [512, 4096] as const) {
  test(`W3: unaligned writes (${sectorSize}-byte sectors) decrypt with cryptsetup to the edited plaintext`, async (t) => {
    const img = await makeEncryptedImage({ fsSizeMiB: 8, sectorSize })
    images.push(img)
    const expected = await readFile(img.plain)
    const edits: [number, Buffer][] = [
      [0, randomBytes(1)],
      [4095, randomBytes(3)],
      [10_000, randomBytes(20_000)],
      [expected.length - 7, randomBytes(7)],
      [777_777, randomBytes(sectorSize)],
    ]
    const volume = await LuksVolume.open(await FileSource.open(img.image, { writable: true }), img.key)
    // Concurrent writes that share data units must not lose each other.
    await Promise.all(edits.map(([off, data]) => volume.write(off, data)))
    for (const [off, data] of edits) data.copy(expected, off)
    for (const [off, data] of edits) t.deepEqual(await volume.read(off, data.length), data, `read back at ${off}`)
    await volume.flush()
    await volume.close()

    const decrypted = path.join(img.dir, 'decrypted.img')
    await copyFile(img.image, decrypted)
    await exec('cryptsetup', ['reencrypt', '--decrypt', '--header', path.join(img.dir, 'moved.hdr'), '--force-offline-reencrypt', '--key-file', img.keyFile, '-q', decrypted], {
      env,
    })
    const out = await readFile(decrypted)
    t.true(out.subarray(0, expected.length).equals(expected), 'cryptsetup decrypts what was written')
  })
}

test('Argon2 runs off the event loop: timers keep firing while a keyslot is derived', async (t) => {
  // 256 MiB of Argon2 takes seconds in WebAssembly; run on the main thread it would stall the
  // loop for all of that, which for a FUSE-serving process means hung readers.
  const img = await makeEncryptedImage({ fsSizeMiB: 8, pbkdf: 'argon2id', argon2MemoryKiB: 256 * 1024 })
  images.push(img)
  const h = monitorEventLoopDelay({ resolution: 10 })
  h.enable()
  const started = performance.now()
  const volume = await LuksVolume.open(await FileSource.open(img.image), img.key)
  const took = performance.now() - started
  h.disable()
  await volume.close()
  const stall = h.max / 1e6
  t.true(took > 500, `unlock took ${took.toFixed(0)} ms`)
  t.true(stall < took / 4, `longest event-loop stall ${stall.toFixed(1)} ms of ${took.toFixed(0)} ms`)
})
