// Loaded into every node process of npm run test:sanitize (NODE_OPTIONS=--require): the sanitizer
// runtimes stay preloaded into node processes (ava's workers, the remotefs processes the tests
// start), and the other programs the tests run (dd, mount, cryptsetup, fusermount) run without
// them: they are not what is checked, and some trip AddressSanitizer's own strict checks (dd's
// aligned_alloc of a size that is not a multiple of the alignment).
'use strict'
const preload = process.env.ENCFS_SANITIZE_PRELOAD
if (preload) {
  delete process.env.LD_PRELOAD
  const { ChildProcess } = require('node:child_process')
  const spawn = ChildProcess.prototype.spawn
  ChildProcess.prototype.spawn = function spawnWithSanitizers(options) {
    if (options && options.file === process.execPath && Array.isArray(options.envPairs)) {
      options.envPairs = [...options.envPairs.filter((pair) => !pair.startsWith('LD_PRELOAD=')), `LD_PRELOAD=${preload}`]
    }
    return spawn.call(this, options)
  }
}
