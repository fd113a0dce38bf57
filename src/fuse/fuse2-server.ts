import Fuse, { type Stat } from 'fuse-native'
import { constants as osConstants } from 'node:os'
import { mkdir } from 'node:fs/promises'
import path from 'node:path'
import { silentLogger, type Logger } from '../log/logger.js'
import { readInto } from '../storage/range-source.js'
import { FuseError } from './errors.js'
import { DEFAULT_FUSE_READAHEAD, setMountReadahead } from './readahead.js'
import { mountFailed, type FileServer, type FileServerOptions, type FileServerStats, type ServedFile } from './file-server.js'

const S_IFDIR = 0o040000
const S_IFREG = 0o100000
const O_ACCMODE = 3

/** fuse-native builds the -o string itself and knows only some options; append the ones it lacks. */
class TunedFuse extends Fuse {
  constructor(
    mnt: string,
    ops: ConstructorParameters<typeof Fuse>[1],
    opts: ConstructorParameters<typeof Fuse>[2],
    private readonly extra: string[],
  ) {
    super(mnt, ops, opts)
  }
  protected override _fuseOptions(): string {
    const base = super._fuseOptions()
    if (this.extra.length === 0) return base
    return base ? `${base},${this.extra.join(',')}` : `-o${this.extra.join(',')}`
  }
}

/**
 * The libfuse2 backend (fuse-native): every request is answered on the main thread by awaiting
 * the source, so nothing here may block: the sources do their I/O asynchronously and the
 * request handlers only copy bytes. libfuse2 cannot negotiate READs above 128 KiB.
 */
export class Fuse2FileServer implements FileServer {
  readonly backend = 'libfuse2' as const
  readonly mountpoint: string
  private readonly fuse: TunedFuse
  private readonly files: Map<string, ServedFile>
  private readonly logger: Logger
  private readonly mountedAt = new Date()
  private mounted = false
  private readonly counters: FileServerStats = { reads: 0, bytesRead: 0, nativeReads: 0, writes: 0, bytesWritten: 0, errors: 0 }

  private constructor(options: FileServerOptions) {
    this.mountpoint = path.resolve(options.mountpoint)
    this.logger = options.logger ?? silentLogger
    this.files = new Map(options.files.map((f) => [`/${f.name}`, f]))
    const extra = ['big_writes', `max_readahead=${options.maxReadahead ?? DEFAULT_FUSE_READAHEAD}`]
    this.fuse = new TunedFuse(
      this.mountpoint,
      this.operations(),
      {
        force: true,
        mkdir: true,
        fsname: options.fsname ?? 'encfs',
        subtype: options.subtype ?? 'encfs',
        // fuse-native arms a timer per request for this; the sources bound their own I/O (the
        // blob client's per-try timeout and retries), so by default no request pays for one.
        timeout: options.requestTimeoutMs ?? false,
        // The images are pinned by ETag (read-only) or written only through us, so the kernel
        // may keep file pages across opens.
        kernelCache: true,
        maxRead: 1024 * 1024,
      },
      extra,
    )
  }

  static async mount(options: FileServerOptions): Promise<Fuse2FileServer> {
    const server = new Fuse2FileServer(options)
    await mkdir(server.mountpoint, { recursive: true })
    await new Promise<void>((resolve, reject) => {
      server.fuse.mount((err) => {
        if (err) reject(mountFailed(server.mountpoint, err))
        else resolve()
      })
    })
    server.mounted = true
    await setMountReadahead(server.mountpoint, options.maxReadahead ?? DEFAULT_FUSE_READAHEAD, server.logger)
    server.logger.debug({ mountpoint: server.mountpoint, files: options.files.map((f) => f.name) }, 'FUSE file server mounted')
    return server
  }

  pathOf(name: string): string {
    return path.join(this.mountpoint, name)
  }

  stats(): FileServerStats {
    return { ...this.counters }
  }

  async unmount(): Promise<void> {
    if (!this.mounted) return
    await new Promise<void>((resolve, reject) => {
      this.fuse.unmount((err) => (err ? reject(new FuseError('FUSE_UNMOUNT_FAILED', `cannot unmount FUSE at ${this.mountpoint}: ${err.message}`, { cause: err })) : resolve()))
    })
    this.mounted = false
  }

  private stat(file: ServedFile | undefined): Stat {
    const t = this.mountedAt
    if (!file) return { mtime: t, atime: t, ctime: t, size: 4096, mode: S_IFDIR | 0o755, uid: 0, gid: 0, nlink: 2 }
    return {
      mtime: t,
      atime: t,
      ctime: t,
      size: file.source.size,
      mode: S_IFREG | (file.writable ? 0o600 : 0o444),
      uid: 0,
      gid: 0,
      nlink: 1,
      blksize: 4096,
      blocks: Math.ceil(file.source.size / 512),
    }
  }

  private operations(): ConstructorParameters<typeof Fuse>[1] {
    const E = osConstants.errno
    return {
      getattr: (p, cb) => {
        if (p === '/') return cb(0, this.stat(undefined))
        const file = this.files.get(p)
        if (!file) return cb(-E.ENOENT)
        cb(0, this.stat(file))
      },
      readdir: (p, cb) => {
        if (p !== '/') return cb(-E.ENOTDIR)
        cb(
          0,
          [...this.files.keys()].map((k) => k.slice(1)),
        )
      },
      open: (p, flags, cb) => {
        const file = this.files.get(p)
        if (!file) return cb(-E.ENOENT)
        if ((flags & O_ACCMODE) !== 0 && !file.writable) return cb(-E.EROFS)
        cb(0, 0)
      },
      release: (_p, _fd, cb) => cb(0),
      truncate: (p, size, cb) => cb(this.files.get(p)?.source.size === size ? 0 : -E.EPERM),
      ftruncate: (p, _fd, size, cb) => cb(this.files.get(p)?.source.size === size ? 0 : -E.EPERM),
      read: (p, _fd, buf, len, pos, cb) => {
        const file = this.files.get(p)
        if (!file) return cb(-E.ENOENT)
        this.read(file, buf, len, pos, cb)
      },
      write: (p, _fd, buf, len, pos, cb) => {
        const file = this.files.get(p)
        if (!file) return cb(-E.ENOENT)
        this.write(file, buf, len, pos, cb)
      },
      flush: (_p, _fd, cb) => cb(0),
      fsync: (p, _datasync, _fd, cb) => {
        const file = this.files.get(p)
        if (!file?.writable) return cb(0)
        this.answer(file.source.flush(), cb, () => 0, { msg: 'fsync failed; answering EIO', file: file.name })
      },
    }
  }

  private read(file: ServedFile, buf: Buffer, len: number, pos: number, cb: (result: number) => void): void {
    const n = Math.max(0, Math.min(len, file.source.size - pos))
    if (n === 0) return cb(0)
    // Straight into libfuse's buffer (a userspace volume decrypts there): no copy of ours.
    const target = buf.length === n ? buf : buf.subarray(0, n)
    this.answer(
      readInto(file.source, pos, target),
      cb,
      () => {
        this.counters.reads++
        this.counters.bytesRead += n
        return n
      },
      { msg: 'read failed; answering EIO', file: file.name, offset: pos, length: n },
    )
  }

  private write(file: ServedFile, buf: Buffer, len: number, pos: number, cb: (result: number) => void): void {
    const E = osConstants.errno
    if (!file.writable) return cb(-E.EROFS)
    if (pos + len > file.source.size) return cb(-E.ENOSPC)
    // libfuse's buffer stays ours until we answer, and the sources copy what they keep.
    this.answer(
      file.source.write(pos, buf.length === len ? buf : buf.subarray(0, len)),
      cb,
      () => {
        this.counters.writes++
        this.counters.bytesWritten += len
        return len
      },
      { msg: 'write failed; answering EIO', file: file.name, offset: pos, length: len },
    )
  }

  /** Answers a request when `op` settles: with `done()` (it counts the success), or EIO (counted and logged). */
  private answer(op: Promise<void>, cb: (result: number) => void, done: () => number, failure: { msg: string } & Record<string, unknown>): void {
    op.then(
      () => cb(done()),
      (err: unknown) => {
        this.counters.errors++
        const { msg, ...where } = failure
        this.logger.error({ err, ...where }, msg)
        cb(-osConstants.errno.EIO)
      },
    )
  }
}
