#!/usr/bin/env -S node --max-semi-space-size=2
// The flag caps V8's young generation at 2 x 2 MiB instead of growing it to 32 MiB while FUSE
// requests churn: 20-40 MiB less RSS for a sidecar that mostly waits (docs/data-path.md#memory).
// Built by `npm run build` (the README's set-up does it). main() reports its own errors; a missing
// build is said in one line rather than as an unhandled rejection.
import('../dist/src/cli/remotefs.js').then(
  (m) => m.main(process.argv.slice(2)),
  (err) => {
    console.error(`remotefs: cannot load the compiled CLI (${err.message}); run npm run build`)
    process.exitCode = 1
  },
)
