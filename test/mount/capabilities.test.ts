import test from 'ava'
import { chooseMounter, chooseUnlock, deviceMapperAvailable, probeCapabilities, type Capabilities } from '../../src/mount/capabilities.js'

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

test('device-mapper counts as available only when the kernel lists it, not because the device node exists', async (t) => {
  const { mkdtemp, writeFile, rm } = await import('node:fs/promises')
  const os = await import('node:os')
  const path = await import('node:path')
  const dir = await mkdtemp(path.join(os.tmpdir(), 'encfs-caps-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const control = path.join(dir, 'control')
  const misc = path.join(dir, 'misc')
  await writeFile(control, '')
  await writeFile(misc, '229 fuse\n237 loop-control\n')
  t.false(await deviceMapperAvailable({ control, misc }), 'installing cryptsetup creates the node even without dm')
  await writeFile(misc, '229 fuse\n236 device-mapper\n237 loop-control\n')
  t.true(await deviceMapperAvailable({ control, misc }))
  t.false(await deviceMapperAvailable({ control: path.join(dir, 'absent'), misc }))
})

test("on this machine: the test suite's prerequisites are there", async (t) => {
  const caps = await probeCapabilities()
  t.true(caps.fuse, '/dev/fuse is required by the test suite')
  t.true(caps.loop, 'loop devices are required by the test suite')
  t.true(caps.fuse2fs, 'fuse2fs is required: apt-get install fuse2fs')
  t.true(caps.cryptsetup, 'cryptsetup is required: apt-get install cryptsetup-bin')
  t.is(caps.deviceMapper, await deviceMapperAvailable(), 'the probe reports what the kernel lists')
})
