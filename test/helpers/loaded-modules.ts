// Preloaded into a remotefs under test (node --import <this file>): every ES module the process
// loads is appended, as its URL, to the file named by ENCFS_TEST_MODULE_LOG, so that a test can
// say which packages a configuration loads and which it does not (loadedPackages()).
import { register } from 'node:module'
import { readFile } from 'node:fs/promises'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

export const LOADED_MODULES_HOOK = fileURLToPath(import.meta.url)

if (process.env.ENCFS_TEST_MODULE_LOG) register('./loaded-modules-hooks.js', import.meta.url)

/** The npm packages in a module log (`@scope/name` or `name`), each once. */
export async function loadedPackages(log: string): Promise<Set<string>> {
  const out = new Set<string>()
  for (const url of (await readFile(log, 'utf8')).split('\n')) {
    const at = url.lastIndexOf('/node_modules/')
    if (at < 0) continue
    const parts = url.slice(at + '/node_modules/'.length).split('/')
    out.add(parts[0]!.startsWith('@') ? `${parts[0]}/${parts[1]}` : parts[0]!)
  }
  return out
}

/** Where the module log of a run named `name` in `dir` goes. */
export const moduleLogOf = (dir: string, name: string): string => path.join(dir, `${name}.modules.log`)
