import { open, stat, constants, type FileHandle } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { checkRange, FillingSource, type WritableRangeSource } from './range-source.js'
import { StorageError } from './errors.js'

/**
 * A local image file, as Go's azmount allows for testing (`file://` URL or absolute path).
 * Opened writable, it is a WritableFileSource.
 */
export class FileSource extends FillingSource {
  readonly kind = 'file' as const

  protected constructor(
    protected readonly handle: FileHandle,
    readonly path: string,
    readonly size: number,
  ) {
    super()
  }

  static open(location: string, o: { writable: true }): Promise<WritableFileSource>
  static open(location: string, o?: { writable?: boolean }): Promise<FileSource>
  static async open(location: string, o: { writable?: boolean } = {}): Promise<FileSource> {
    const file = location.startsWith('file:') ? fileURLToPath(location) : location
    const fail = (err: unknown): never => {
      const e = err as NodeJS.ErrnoException
      if (e.code === 'ENOENT') throw new StorageError('STORAGE_NOT_FOUND', `image file ${file} does not exist`, { cause: err })
      if (e.code === 'EACCES' || e.code === 'EPERM') throw new StorageError('STORAGE_ACCESS_DENIED', `cannot open image file ${file}: permission denied`, { cause: err })
      throw new StorageError('STORAGE_READ_FAILED', `cannot open image file ${file}: ${e.message}`, { cause: err })
    }
    const notAFile = (): StorageError => new StorageError('STORAGE_NOT_A_FILE', `${file} is not a regular file or block device; give the image file itself`)
    // open() of a FIFO waits for a writer, forever and beyond SIGTERM: look at the type first,
    // and open without blocking in case it changed in between (then fstat tells).
    const before = await stat(file).catch(fail)
    if (!before.isFile() && !before.isBlockDevice()) throw notAFile()
    const handle = await open(file, (o.writable ? constants.O_RDWR : constants.O_RDONLY) | constants.O_NONBLOCK).catch(fail)
    const st = await handle.stat()
    if ((!st.isFile() && !st.isBlockDevice()) || st.ino !== before.ino || st.dev !== before.dev) {
      await handle.close()
      throw notAFile()
    }
    return o.writable ? new WritableFileSource(handle, file, st.size) : new FileSource(handle, file, st.size)
  }

  protected async fill(offset: number, buf: Buffer): Promise<void> {
    const length = buf.length
    let done = 0
    while (done < length) {
      const { bytesRead } = await this.handle.read(buf, done, length - done, offset + done)
      if (bytesRead === 0)
        throw new StorageError('STORAGE_SHORT_READ', `${this.path} ended at ${offset + done} bytes, ${length - done} bytes short (was it truncated while mounted?)`)
      done += bytesRead
    }
  }

  async close(): Promise<void> {
    await this.handle.close()
  }
}

/** A local image file opened read-write (read_write on a file:// image). */
export class WritableFileSource extends FileSource implements WritableRangeSource {
  async write(offset: number, data: Buffer): Promise<void> {
    checkRange(this.size, offset, data.length)
    let done = 0
    while (done < data.length) {
      const { bytesWritten } = await this.handle.write(data, done, data.length - done, offset + done)
      done += bytesWritten
    }
  }

  flush(): Promise<void> {
    return this.handle.datasync()
  }
}
