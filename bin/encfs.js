#!/usr/bin/env node
// Built by `npm run build` (the README's set-up does it).
import('../dist/src/cli/encfs.js').then((m) => m.main(process.argv.slice(2)))
