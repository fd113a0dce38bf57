// fuse-native ships no types; this covers the part encfs uses.
declare module 'fuse-native' {
  type Cb<T extends unknown[] = []> = (err: number, ...res: T) => void
  export interface Stat {
    mtime: Date
    atime: Date
    ctime: Date
    size: number
    mode: number
    uid: number
    gid: number
    nlink?: number
    dev?: number
    ino?: number
    rdev?: number
    blksize?: number
    blocks?: number
  }
  export interface StatFs {
    bsize: number
    frsize: number
    blocks: number
    bfree: number
    bavail: number
    files: number
    ffree: number
    favail: number
    fsid: number
    flag: number
    namemax: number
  }
  export interface Ops {
    init?(cb: Cb): void
    getattr?(path: string, cb: Cb<[Stat?]>): void
    fgetattr?(path: string, fd: number, cb: Cb<[Stat?]>): void
    statfs?(path: string, cb: Cb<[StatFs?]>): void
    readdir?(path: string, cb: Cb<[string[]?]>): void
    open?(path: string, flags: number, cb: Cb<[number?]>): void
    release?(path: string, fd: number, cb: Cb): void
    read?(path: string, fd: number, buf: Buffer, len: number, pos: number, cb: (res: number) => void): void
    write?(path: string, fd: number, buf: Buffer, len: number, pos: number, cb: (res: number) => void): void
    flush?(path: string, fd: number, cb: Cb): void
    fsync?(path: string, datasync: boolean, fd: number, cb: Cb): void
    truncate?(path: string, size: number, cb: Cb): void
    ftruncate?(path: string, fd: number, size: number, cb: Cb): void
    access?(path: string, mode: number, cb: Cb): void
  }
  export interface FuseOptions {
    force?: boolean
    mkdir?: boolean
    timeout?: number | false
    fsname?: string
    subtype?: string
    kernelCache?: boolean
    maxRead?: number
    allowOther?: boolean
    autoUnmount?: boolean
    debug?: boolean
    attrTimeout?: number
    entryTimeout?: number
  }
  class Fuse {
    constructor(mnt: string, ops: Ops, opts?: FuseOptions)
    readonly mnt: string
    mount(cb: (err: Error | null) => void): void
    unmount(cb: (err: Error | null) => void): void
    protected _fuseOptions(): string
    static unmount(mnt: string, cb: (err: Error | null) => void): void
    static readonly EPERM: number
    static readonly ENOENT: number
    static readonly EIO: number
    static readonly EACCES: number
    static readonly EROFS: number
    static readonly EINVAL: number
    static readonly EBADF: number
    static readonly ENOSPC: number
    static readonly EFBIG: number
  }
  export default Fuse
}
