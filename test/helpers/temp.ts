import { mkdtemp, rm } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'

export interface TempDir {
  dir: string
  cleanup(): Promise<void>
}

/** A new directory under the system's temporary directory; `cleanup()` removes it and all it holds. */
export async function tempDir(prefix = 'encfs-test-'): Promise<TempDir> {
  const dir = await mkdtemp(path.join(os.tmpdir(), prefix))
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) }
}
