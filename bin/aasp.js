#!/usr/bin/env node
// The AASP role (Go's /bin/aasp): built by `npm run build`. main() reports its own errors; a
// missing build is said in one line rather than as an unhandled rejection.
import('../dist/src/cli/aasp.js').then(
  (m) => m.main(process.argv.slice(2)),
  (err) => {
    console.error(`aasp: cannot load the compiled CLI (${err.message}); run npm run build`)
    process.exitCode = 1
  },
)
