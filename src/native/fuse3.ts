import { createRequire } from 'node:module'
import { EncfsError } from '../errors.js'

export interface Fuse3Addon {
  readonly version: string
}

let addon: Fuse3Addon | undefined
let failure: EncfsError | undefined

/** The libfuse3 data plane built from native/fuse3 by npm run setup (needs libfuse3-dev to build, libfuse3-3 to run). */
export function loadFuse3Addon(): Fuse3Addon {
  if (addon) return addon
  if (failure) throw failure
  try {
    addon = createRequire(import.meta.url)('../../../native/fuse3/build/Release/encfs_fuse3.node') as Fuse3Addon
    return addon
  } catch (err) {
    const e = err as NodeJS.ErrnoException
    failure = new EncfsError('FUSE3_ADDON_MISSING', e.code === 'MODULE_NOT_FOUND'
      ? 'the libfuse3 addon is not built (npm run setup builds it when libfuse3-dev is installed)'
      : `the libfuse3 addon does not load: ${e.message.split('\n')[0]} (it needs Debian's libfuse3-3)`, { cause: err })
    throw failure
  }
}
