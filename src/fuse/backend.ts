import { createRequire } from 'node:module'
import { loadFuse3Addon } from '../native/fuse3.js'
import { loadProblem } from '../process/load-addon.js'
import { FuseError } from './errors.js'

export type FuseBackend = 'libfuse3' | 'libfuse2'
export type FuseBackendMode = 'auto' | FuseBackend
export const FUSE_BACKEND_MODES: readonly FuseBackendMode[] = ['auto', 'libfuse3', 'libfuse2']

export interface FuseBackendChoice {
  backend: FuseBackend
  reason: string
}

function libfuse2Problem(): string | undefined {
  try {
    createRequire(import.meta.url)('fuse-native')
    return undefined
  } catch (err) {
    return `fuse-native does not load (${(err as Error).message.split('\n')[0]}); it needs Debian's libfuse2`
  }
}

const libfuse3Problem = (): string | undefined => loadProblem(loadFuse3Addon)

/**
 * `auto` takes encfs's libfuse3 data plane when its addon loads (large requests, cache hits served
 * in native threads), else fuse-native over libfuse2. An explicit choice that cannot load is an
 * error that says what to install.
 */
export function chooseFuseBackend(requested: FuseBackendMode): FuseBackendChoice {
  if (requested === 'libfuse3') {
    const problem = libfuse3Problem()
    if (problem) throw new FuseError('FUSE_BACKEND_UNAVAILABLE', `--fuse libfuse3: ${problem}. Use --fuse libfuse2 (or auto).`)
    return { backend: 'libfuse3', reason: 'requested' }
  }
  if (requested === 'libfuse2') {
    const problem = libfuse2Problem()
    if (problem) throw new FuseError('FUSE_BACKEND_UNAVAILABLE', `--fuse libfuse2: ${problem} (apt-get install libfuse2). Use --fuse libfuse3 (or auto).`)
    return { backend: 'libfuse2', reason: 'requested' }
  }
  const problem3 = libfuse3Problem()
  if (!problem3) return { backend: 'libfuse3', reason: 'the libfuse3 addon loads: up to 1 MiB requests, cache hits served in native threads' }
  const problem2 = libfuse2Problem()
  if (!problem2) return { backend: 'libfuse2', reason: `the libfuse3 addon is not usable (${problem3})` }
  throw new FuseError(
    'FUSE_BACKEND_UNAVAILABLE',
    `no FUSE backend loads: ${problem3}; and ${problem2}. Run npm run setup (it installs libfuse3-dev and builds the addon) or install libfuse2.`,
  )
}

/** The backends that load here, the one `auto` picks first. */
export async function availableFuseBackends(): Promise<FuseBackend[]> {
  const out: FuseBackend[] = []
  if (!libfuse3Problem()) out.push('libfuse3')
  if (!libfuse2Problem()) out.push('libfuse2')
  return out
}
