import type { FuseBackend } from './backend.js'
import { checkServedNames, type FileServer, type FileServerOptions } from './file-server.js'

/** Mounts with the given backend ('libfuse3' or 'libfuse2'); choose one with chooseFuseBackend. */
export async function mountFileServer(options: FileServerOptions & { backend: FuseBackend }): Promise<FileServer> {
  checkServedNames(options.files)
  if (options.backend === 'libfuse3') {
    const { Fuse3FileServer } = await import('./fuse3-server.js')
    return Fuse3FileServer.mount(options)
  }
  const { Fuse2FileServer } = await import('./fuse2-server.js')
  return Fuse2FileServer.mount(options)
}
