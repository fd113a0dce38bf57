import test from 'ava'
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm, writeFile, truncate, mkdir, readFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { pathToFileURL } from 'node:url'
import { FileSource } from '../../src/storage/file-source.js'
import { conformance } from './conformance.js'
import { openSource } from '../../src/storage/open-source.js'
import { StorageError } from '../../src/storage/errors.js'

const SIZE = 3 * 1024 * 1024 + 4321

async function withImage(fn: (file: string, bytes: Buffer, dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'encfs-file-source-'))
  try {
    const bytes = randomBytes(SIZE)
    const file = path.join(dir, 'image with space.img')
    await writeFile(file, bytes)
    await fn(file, bytes, dir)
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

/** A fresh image file with random bytes, for the conformance suite; `writable` opens it read-write. */
function fileSubject(writable: boolean) {
  return async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'encfs-file-source-'))
    const bytes = randomBytes(SIZE)
    const file = path.join(dir, 'image.img')
    await writeFile(file, bytes)
    const source = await FileSource.open(file, { writable })
    return { source, bytes, persisted: () => readFile(file), cleanup: () => rm(dir, { recursive: true, force: true }) }
  }
}

conformance({ name: 'FileSource', open: fileSubject(false) })
conformance({ name: 'WritableFileSource', open: fileSubject(true), writable: true })

test('a FileSource says what it is: kind, path and size', async (t) => {
  await withImage(async (file) => {
    const src = await FileSource.open(file)
    try {
      t.is(src.size, SIZE)
      t.is(src.kind, 'file')
      t.is(src.path, file)
    } finally {
      await src.close()
    }
  })
})

test('a missing file is STORAGE_NOT_FOUND naming the path', async (t) => {
  const missing = path.join(os.tmpdir(), `encfs-no-such-image-${process.pid}-${Date.now()}.img`)
  const err = await t.throwsAsync(FileSource.open(missing), { instanceOf: StorageError })
  t.is(err.code, 'STORAGE_NOT_FOUND')
  t.true(err.message.includes(missing), err.message)
  t.regex(err.message, /does not exist/)
  // The same through a file:// URL: the message names the path, not the URL.
  const viaUrl = await t.throwsAsync(openSource(pathToFileURL(missing).href), { instanceOf: StorageError })
  t.is(viaUrl.code, 'STORAGE_NOT_FOUND')
  t.true(viaUrl.message.includes(missing), viaUrl.message)
})

test('a directory is refused as not a regular file', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'encfs-file-source-dir-'))
  try {
    await mkdir(path.join(dir, 'sub'))
    const err = await t.throwsAsync(FileSource.open(path.join(dir, 'sub')), { instanceOf: StorageError })
    t.is(err.code, 'STORAGE_NOT_A_FILE')
    t.true(err.message.includes(path.join(dir, 'sub')))
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})

test('an image truncated while open gives STORAGE_SHORT_READ instead of short data', async (t) => {
  await withImage(async (file) => {
    const src = await FileSource.open(file)
    try {
      await truncate(file, 1000)
      const err = await t.throwsAsync(src.read(500, 1000), { instanceOf: StorageError })
      t.is(err.code, 'STORAGE_SHORT_READ')
      t.true(err.message.includes(file))
    } finally {
      await src.close()
    }
  })
})

test('a read-only FileSource leaves the image as it was', async (t) => {
  await withImage(async (file, bytes) => {
    const ro = await FileSource.open(file)
    await ro.read(0, 4096)
    await ro.close()
    t.true((await readFile(file)).equals(bytes))
  })
})

test('openSource opens file:// URLs and absolute paths as the same bytes', async (t) => {
  await withImage(async (file, bytes) => {
    const url = pathToFileURL(file).href
    t.true(url.includes('%20'), 'the URL is percent-encoded')
    for (const location of [url, file]) {
      const src = await openSource(location)
      try {
        t.is(src.kind, 'file', location)
        t.is(src.size, SIZE, location)
        const off = 1_234_567
        t.true((await src.read(off, 70_000)).equals(bytes.subarray(off, off + 70_000)), location)
      } finally {
        await src.close()
      }
    }
  })
})

test('a FIFO, a character device or a socket as the image is refused at once, without blocking', async (t) => {
  const { execFile } = await import('node:child_process')
  const { promisify } = await import('node:util')
  const { createServer } = await import('node:net')
  await withImage(async (_file, _bytes, dir) => {
    const fifo = path.join(dir, 'fifo.img')
    await promisify(execFile)('mkfifo', [fifo])
    const sock = path.join(dir, 'sock.img')
    const server = createServer()
    await new Promise<void>((resolve) => server.listen(sock, resolve))
    try {
      for (const [special, writable] of [
        [fifo, false],
        [fifo, true],
        ['/dev/zero', false],
        ['/dev/tty', false],
        [sock, false],
      ] as const) {
        const started = Date.now()
        // Nothing writes to the FIFO: an open() that waits for a writer would hang here.
        const err = await t.throwsAsync(
          Promise.race([
            openSource(special, writable ? { writable: { leaseIdFile: path.join(dir, 'lease') } } : {}),
            new Promise((_, reject) => setTimeout(() => reject(new Error(`opening ${special} blocked`)), 3000)),
          ]),
          { instanceOf: StorageError },
          special,
        )
        t.is(err?.code, 'STORAGE_NOT_A_FILE', special)
        t.regex(err?.message ?? '', /not a regular file or block device/)
        t.true(Date.now() - started < 1000, `${special} refused in ${Date.now() - started} ms`)
      }
    } finally {
      server.close()
    }
  })
})
