// Writes docs/errors.md from the error registry (src/errors/codes.ts): npm run docs:errors.
import { writeFile } from 'node:fs/promises'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { errorsMarkdown } from '../src/errors/reference.js'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..')
await writeFile(path.join(root, 'docs', 'errors.md'), errorsMarkdown())
process.stdout.write('docs/errors.md written\n')
