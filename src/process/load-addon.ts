import { createRequire } from 'node:module'
import { EncfsError } from '../errors/encfs-error.js'
import type { ErrorCode } from '../errors/codes.js'

export interface AddonSpec {
  /** The .node file, relative to this compiled module (dist/src/process/). */
  file: string
  code: ErrorCode
  /** What to do when the file is not there (it was not built). */
  notBuilt: string
  /** What to do when it is there but does not load (a shared library missing). */
  notLoading: string
}

/**
 * A loader for one of the addons npm run setup builds: loaded once, and a failure remembered, so
 * the choice of a backend and its use later in the process see the same answer.
 */
export function addonLoader<T>(spec: AddonSpec): () => T {
  let addon: T | undefined
  let failure: EncfsError | undefined
  return () => {
    if (addon) return addon
    if (failure) throw failure
    try {
      addon = createRequire(import.meta.url)(spec.file) as T
      return addon
    } catch (err) {
      const e = err as NodeJS.ErrnoException
      const first = e.message.split('\n')[0]
      failure = new EncfsError(spec.code, e.code === 'MODULE_NOT_FOUND' ? spec.notBuilt : `${spec.notLoading}: ${first}`, { cause: err })
      throw failure
    }
  }
}

/** The message of what `load` throws, or undefined when it loads. */
export function loadProblem(load: () => unknown): string | undefined {
  try {
    load()
    return undefined
  } catch (err) {
    return (err as Error).message
  }
}
