import test from 'ava'
import { chooseMounter, chooseUnlock, probeCapabilities, type Capabilities } from '../../src/mount/capabilities.js'

const all: Capabilities = { deviceMapper: true, cryptsetup: true, loop: true, fuse2fs: true, fuse: true }

test('auto unlock picks kernel only when device-mapper and cryptsetup are both there, and says why', (t) => {
  t.is(chooseUnlock('auto', all).mode, 'kernel')
  const noDm = chooseUnlock('auto', { ...all, deviceMapper: false })
  t.is(noDm.mode, 'userspace')
  t.regex(noDm.reason, /device-mapper is not available/)
  const noCs = chooseUnlock('auto', { ...all, cryptsetup: false })
  t.is(noCs.mode, 'userspace')
  t.regex(noCs.reason, /cryptsetup is not installed/)
})

test('--unlock kernel without device-mapper fails with a message that names the way out', (t) => {
  const err = t.throws(() => chooseUnlock('kernel', { ...all, deviceMapper: false }))
  t.is((err as { code?: string }).code, 'UNLOCK_KERNEL_UNAVAILABLE')
  t.regex(err!.message, /--unlock userspace/)
  t.is(chooseUnlock('userspace', all).mode, 'userspace')
})

test('auto mounter prefers loop devices and falls back to fuse2fs', (t) => {
  t.is(chooseMounter('auto', all).mode, 'loop')
  t.is(chooseMounter('auto', { ...all, loop: false }).mode, 'fuse2fs')
  t.is((t.throws(() => chooseMounter('auto', { ...all, loop: false, fuse2fs: false })) as { code?: string }).code, 'MOUNTER_UNAVAILABLE')
  t.is((t.throws(() => chooseMounter('loop', { ...all, loop: false })) as { code?: string }).code, 'MOUNTER_LOOP_UNAVAILABLE')
  t.is(chooseMounter('fuse2fs', all).mode, 'fuse2fs')
})

test('on this machine: FUSE and loop devices are there, device-mapper is not, so auto is userspace', async (t) => {
  const caps = await probeCapabilities()
  t.true(caps.fuse, '/dev/fuse is required by the test suite')
  t.true(caps.loop, 'loop devices are required by the test suite')
  t.true(caps.fuse2fs, 'fuse2fs is required: apt-get install fuse2fs')
  t.true(caps.cryptsetup, 'cryptsetup is required: apt-get install cryptsetup-bin')
  if (!caps.deviceMapper) t.is(chooseUnlock('auto', caps).mode, 'userspace')
  else t.is(chooseUnlock('auto', caps).mode, 'kernel')
})
