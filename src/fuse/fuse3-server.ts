import { mkdir } from 'node:fs/promises'
import { constants as osConstants } from 'node:os'
import path from 'node:path'
import { silentLogger, type Logger } from '../log/logger.js'
import { loadFuse3Addon, type Fuse3EventKinds, type Fuse3Session, type Fuse3SessionFile, type Fuse3Stop, type Fuse3Table } from '../native/fuse3.js'
import type { MirroredCache, NativeView } from '../storage/native-view.js'
import { readInto } from '../storage/range-source.js'
import { FuseError } from './errors.js'
import { mountFailed, type FileServer, type FileServerOptions, type FileServerStats, type ServedFile } from './file-server.js'
import { DEFAULT_FUSE_READAHEAD, setMountReadahead } from './readahead.js'

const E = osConstants.errno

/** Reply buffers for reads answered by JavaScript, kept for the next ones (a fresh 1 MiB allocation page-faults). */
class BufferPool {
  private readonly free: Buffer[] = []
  constructor(
    private readonly size: number,
    private readonly keep: number,
  ) {}
  take(length: number): Buffer {
    if (length > this.size) return Buffer.allocUnsafe(length)
    const b = this.free.pop() ?? Buffer.allocUnsafe(this.size)
    return b.subarray(0, length)
  }
  give(b: Buffer): void {
    if (b.buffer.byteLength === this.size && b.byteOffset === 0 && this.free.length < this.keep) this.free.push(Buffer.from(b.buffer, 0, this.size))
  }
}

/**
 * The libfuse3 backend: encfs's own addon (native/fuse3). READs of cached ranges are answered by
 * its FUSE threads (decrypting AES-XTS there for userspace volumes); misses, writes and fsync
 * come here as events and are answered by request id, so the main thread never waits for the
 * kernel and the FUSE threads never wait for JavaScript. Requests are up to 1 MiB.
 */
export class Fuse3FileServer implements FileServer {
  readonly backend = 'libfuse3' as const
  readonly mountpoint: string
  private readonly logger: Logger
  private readonly files: ServedFile[]
  private readonly views: (NativeView | undefined)[]
  private readonly tables = new Map<MirroredCache, Fuse3Table>()
  private session?: Fuse3Session
  private readonly pool: BufferPool
  private readonly counters = { reads: 0, bytesRead: 0, writes: 0, bytesWritten: 0, errors: 0 }
  private readonly kinds: Readonly<Fuse3EventKinds>
  private stopped?: (stop: Fuse3Stop) => void
  private mounted = false
  private lastStats?: FileServerStats

  private constructor(options: FileServerOptions) {
    this.mountpoint = path.resolve(options.mountpoint)
    this.logger = options.logger ?? silentLogger
    this.files = options.files
    this.views = options.files.map(() => undefined)
    this.pool = new BufferPool(loadFuse3Addon().maxRequest, 4)
    this.kinds = loadFuse3Addon().events
  }

  static async mount(options: FileServerOptions): Promise<Fuse3FileServer> {
    const addon = loadFuse3Addon()
    const server = new Fuse3FileServer(options)
    await mkdir(server.mountpoint, { recursive: true })
    const files: Fuse3SessionFile[] = options.files.map((f, i) => {
      const view = f.source.nativeView?.()
      if (!view) return { name: f.name, size: f.source.size, writable: f.writable }
      let table = server.tables.get(view.cache)
      if (!table) {
        table = new addon.Table()
        server.tables.set(view.cache, table)
      }
      server.views[i] = view
      return { name: f.name, size: f.source.size, writable: f.writable, table, offset: view.offset, ...(view.xts ? { xts: view.xts } : {}) }
    })
    // What is cached already (the LUKS header, ext4's first blocks) is served natively from the first request.
    for (const [cache, table] of server.tables) cache.attachMirror(table)
    try {
      const session = new addon.Session(
        { mountpoint: server.mountpoint, fsname: options.fsname ?? 'encfs', subtype: options.subtype ?? 'encfs', files },
        (kind, id, file, offset, length, data) => server.onEvent(kind, id, file, offset, length, data),
      )
      server.session = session
      session.mount()
    } catch (err) {
      server.session = undefined
      for (const cache of server.tables.keys()) cache.detachMirror()
      throw mountFailed(server.mountpoint, err as Error)
    }
    server.mounted = true
    await setMountReadahead(server.mountpoint, options.maxReadahead ?? DEFAULT_FUSE_READAHEAD, server.logger)
    server.logger.debug(
      { mountpoint: server.mountpoint, libfuse: addon.libfuseVersion(), files: options.files.map((f, i) => ({ name: f.name, native: server.views[i] !== undefined })) },
      'FUSE file server mounted (libfuse3)',
    )
    return server
  }

  pathOf(name: string): string {
    return path.join(this.mountpoint, name)
  }

  stats(): FileServerStats {
    if (!this.session && this.lastStats) return { ...this.lastStats }
    const s = this.session?.stats()
    return {
      reads: this.counters.reads + (s?.nativeReads ?? 0),
      bytesRead: this.counters.bytesRead + (s?.nativeBytes ?? 0),
      nativeReads: s?.nativeReads ?? 0,
      writes: this.counters.writes,
      bytesWritten: this.counters.bytesWritten,
      errors: this.counters.errors,
    }
  }

  /**
   * Aborts the FUSE connection and unmounts (docs/data-path.md, "Shutdown"): requests still
   * waiting, and every later read by whoever holds the file, fail at once; what JavaScript
   * answers afterwards is dropped. Throws only when the connection could not be aborted.
   */
  async unmount(): Promise<void> {
    if (!this.mounted || !this.session) return
    this.mounted = false
    const session = this.session
    const stop = await new Promise<Fuse3Stop>((resolve) => {
      this.stopped = resolve
      session.unmount()
    })
    const last = this.stats()
    session.close()
    this.session = undefined
    this.lastStats = last
    for (const cache of this.tables.keys()) cache.detachMirror()
    if (!stop.ended) throw new FuseError('FUSE_UNMOUNT_FAILED', `cannot unmount FUSE at ${this.mountpoint}: ${stop.detail}`)
    this.logger.debug({ mountpoint: this.mountpoint, detail: stop.detail }, 'FUSE file server unmounted (libfuse3)')
  }

  /** A handler that throws must not leave the kernel waiting: the request is answered with EIO. */
  private onEvent(kind: number, id: number, file: number, offset: number, length: number, data: Buffer | Fuse3Stop | undefined): void {
    try {
      this.dispatch(kind, id, file, offset, length, data)
    } catch (err) {
      this.counters.errors++
      this.logger.error({ err, kind, file, offset, length }, 'FUSE request handler failed; answering EIO')
      if (id !== 0) this.replyEio(this.session, id)
    }
  }

  private dispatch(kind: number, id: number, file: number, offset: number, length: number, data: Buffer | Fuse3Stop | undefined): void {
    const session = this.session
    const K = this.kinds
    if (kind === K.stopped) return this.onStopped(data as Fuse3Stop)
    if (!session) return
    const served = this.files[file]
    if (kind === K.touch) {
      return session.drainTouches().forEach((ranges, i) => {
        if (ranges) this.views[i]?.cache.noteReads(ranges)
      })
    }
    if (!served) throw new RangeError(`event ${kind} for file ${file}, which is not served`)
    const view = this.views[file]
    if (kind === K.read && view) return this.load(session, id, view, served, offset, length)
    if (kind === K.read || kind === K.readData) return this.read(session, id, served, offset, length)
    if (kind === K.write || kind === K.writeEncrypted) return this.write(session, id, served, offset, data as Buffer, kind === K.writeEncrypted)
    if (kind === K.fsync) return this.fsync(session, id, served)
    throw new RangeError(`unknown FUSE event kind ${kind}`)
  }

  private onStopped(stop: Fuse3Stop): void {
    if (stop.requested) this.stopped?.(stop)
    else this.logger.error({ mountpoint: this.mountpoint, reason: stop.detail }, 'the FUSE mount went away while serving (was it unmounted from outside?)')
  }

  /**
   * A miss of a mirrored file: JavaScript only gets the ciphertext into the cache; a native retry
   * thread then decrypts and answers, so the main thread is left to receive from storage.
   */
  private load(session: Fuse3Session, id: number, view: NativeView, file: ServedFile, offset: number, length: number): void {
    const unit = view.xts?.unit ?? 1
    const start = Math.floor(offset / unit) * unit
    const end = Math.ceil((offset + length) / unit) * unit
    // A cache block that failed as a whole may still hold the bytes asked for intact (dm-verity): then the source decides.
    let around = false
    const loaded = view.cache.load(view.offset + start, end - start).catch((err: unknown) => {
      if (!view.readAround?.(err)) throw err
      around = true
    })
    this.answer(session, id, loaded, () => (around ? this.read(session, id, file, offset, length) : session.retry(id)), {
      msg: 'read failed; answering EIO',
      file: file.name,
      offset,
      length,
    })
  }

  private read(session: Fuse3Session, id: number, file: ServedFile, offset: number, length: number): void {
    const buf = this.pool.take(length)
    const read = readInto(file.source, offset, buf).catch((err: unknown) => {
      this.pool.give(buf)
      throw err
    })
    this.answer(
      session,
      id,
      read,
      () => {
        session.replyData(id, buf)
        this.pool.give(buf)
        this.counters.reads++
        this.counters.bytesRead += length
      },
      { msg: 'read failed; answering EIO', file: file.name, offset, length },
    )
  }

  /** The bytes are ours (the addon's copy of the request): handed over to the cache, which keeps them. */
  private write(session: Fuse3Session, id: number, file: ServedFile, offset: number, data: Buffer, encrypted: boolean): void {
    const write = this.writerOf(file, encrypted)
    if (!write) {
      session.replyError(id, encrypted ? E.EIO : E.EROFS)
      return
    }
    this.answer(
      session,
      id,
      write(offset, data, true),
      () => {
        this.counters.writes++
        this.counters.bytesWritten += data.length
        session.replyWrite(id, data.length)
      },
      { msg: 'write failed; answering EIO', file: file.name, offset, length: data.length },
    )
  }

  /** Where a write goes: ciphertext the native side encrypted to the view under the volume, plaintext to the file's source. */
  private writerOf(file: ServedFile, encrypted: boolean): ((offset: number, data: Buffer, owned: boolean) => Promise<void>) | undefined {
    if (encrypted) return this.views[this.files.indexOf(file)]?.writeEncrypted
    return file.writable ? (offset, data, owned) => file.source.write(offset, data, owned) : undefined
  }

  private fsync(session: Fuse3Session, id: number, file: ServedFile): void {
    if (!file.writable) {
      session.replyError(id, 0)
      return
    }
    this.answer(session, id, file.source.flush(), () => void session.replyError(id, 0), { msg: 'fsync failed; answering EIO', file: file.name })
  }

  /** Answers request `id` when `op` settles: `done()` on success, EIO on failure, or when `done()` itself throws (counted and logged). */
  private answer(session: Fuse3Session, id: number, op: Promise<void>, done: () => void, failure: { msg: string } & Record<string, unknown>): void {
    const fail = (err: unknown): void => {
      this.counters.errors++
      const { msg, ...where } = failure
      this.logger.error({ err, ...where }, msg)
      this.replyEio(session, id)
    }
    op.then(() => {
      try {
        done()
      } catch (err) {
        fail(err)
      }
    }, fail)
  }

  private replyEio(session: Fuse3Session | undefined, id: number): void {
    try {
      session?.replyError(id, E.EIO)
    } catch (err) {
      this.logger.error({ err, id }, 'cannot answer a FUSE request with EIO')
    }
  }
}
