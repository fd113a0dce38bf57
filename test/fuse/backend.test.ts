import test from 'ava'
import { availableFuseBackends, chooseFuseBackend } from '../../src/fuse/backend.js'
import { loadFuse3Addon } from '../../src/native/fuse3.js'

test('auto takes the libfuse3 data plane when its addon loads, and says why; explicit choices are honoured', async (t) => {
  const addon = loadFuse3Addon()
  t.regex(addon.libfuseVersion(), /^3\d+$/, 'linked against libfuse 3')
  t.is(addon.maxRequest, 1024 * 1024)
  const auto = chooseFuseBackend('auto')
  t.is(auto.backend, 'libfuse3')
  t.regex(auto.reason, /libfuse3 addon loads/)
  t.deepEqual(chooseFuseBackend('libfuse2'), { backend: 'libfuse2', reason: 'requested' })
  t.deepEqual(chooseFuseBackend('libfuse3'), { backend: 'libfuse3', reason: 'requested' })
  t.deepEqual(await availableFuseBackends(), ['libfuse3', 'libfuse2'])
})
