import path from 'node:path'
import { fileURLToPath } from 'node:url'

/**
 * Test vectors (spec/testdata of the design docs, copied into the repository so that a clone
 * alone runs the tests): the Go project's reports, certificates, keys and sample configurations.
 */
export const VECTORS = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../test/vectors')

export const vector = (...parts: string[]): string => path.join(VECTORS, ...parts)
