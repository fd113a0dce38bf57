#!/usr/bin/env node
// Built by `npm run build` (the README's set-up does it). main() reports its own errors; a missing
// build is said in one line rather than as an unhandled rejection.
import('../dist/src/cli/encfs.js').then(
  (m) => m.main(process.argv.slice(2)),
  (err) => {
    console.error(`encfs: cannot load the compiled CLI (${err.message}); run npm run build`)
    process.exitCode = 1
  },
)
