import { FuseError } from './errors.js'
import type { FileServer, FileServerOptions } from './file-server.js'

export class Fuse3FileServer {
  static async mount(_options: FileServerOptions): Promise<FileServer> {
    throw new FuseError('FUSE_BACKEND_UNAVAILABLE', 'the libfuse3 backend is not built yet')
  }
}
