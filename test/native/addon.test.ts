// The SEV-SNP report, AES-XTS and dm-verity hashing addon (native/): every value is checked at
// its boundary before native code uses it (a NaN or negative number cast to an unsigned integer
// is undefined behaviour; overlapping buffers would be read after they were written).
import test from 'ava'
import { loadAddon } from '../../src/native/addon.js'

const addon = loadAddon()
const key = Buffer.alloc(64, 1)

test('xtsCrypt: the first sector, the unit and the buffers are checked', (t) => {
  const data = Buffer.alloc(8192)
  const out = Buffer.alloc(8192)
  for (const first of [Number.NaN, -1, 0.5, Number.POSITIVE_INFINITY, 2 ** 53]) {
    t.throws(() => addon.xtsCrypt(false, key, data, out, first, 4096, true), { instanceOf: RangeError, message: /firstSector/ }, `firstSector ${first}`)
  }
  for (const unit of [0, 256, 1000, 8192, -4096, Number.NaN]) {
    t.throws(() => addon.xtsCrypt(false, key, data, out, 0, unit, true), { instanceOf: RangeError }, `unit ${unit}`)
  }
  t.throws(() => addon.xtsCrypt(false, key, data, data.subarray(512), 0, 4096, true), { instanceOf: RangeError }, 'output shorter than input')
  const both = Buffer.alloc(16384)
  t.throws(() => addon.xtsCrypt(false, key, both.subarray(0, 8192), both.subarray(4096, 12288), 0, 4096, true), { instanceOf: RangeError, message: /overlap/ })
  t.throws(() => addon.xtsCrypt(false, key, data, out, '0' as unknown as number, 4096, true), { instanceOf: TypeError })
  t.throws(() => addon.xtsCrypt(1 as unknown as boolean, key, data, out, 0, 4096, true), { instanceOf: TypeError })
  t.notThrows(() => addon.xtsCrypt(false, key, data, data, 2 ** 40, 4096, true), 'in place, a large sector number')
  t.notThrows(() => addon.xtsCrypt(true, key, data, out, 7, 512, false))
})

test('sha256Blocks: the block size and the salt are checked', async (t) => {
  const input = Buffer.alloc(8192)
  const out = Buffer.alloc(64)
  for (const block of [0, -4096, 0.5, Number.NaN, 2 ** 40]) {
    t.throws(() => addon.sha256Blocks(Buffer.alloc(32), input, block, out), { instanceOf: RangeError, message: /blockSize/ }, `block ${block}`)
    await t.throwsAsync(async () => addon.sha256BlocksAsync(Buffer.alloc(32), input, block, out), { instanceOf: RangeError }, `async block ${block}`)
  }
  t.throws(() => addon.sha256Blocks(Buffer.alloc(257), input, 4096, out), { instanceOf: RangeError, message: /salt/ })
  t.throws(() => addon.sha256Blocks(Buffer.alloc(32), input, 4096, Buffer.alloc(63)), { instanceOf: RangeError })
  t.notThrows(() => addon.sha256Blocks(Buffer.alloc(32), input, 4096, out))
})

test('getReport: a device path that is not absolute or holds NUL is refused', async (t) => {
  const data = Buffer.alloc(64)
  await t.throwsAsync(async () => addon.getReport('sev-guest', 'dev/sev-guest', data), { instanceOf: TypeError, message: /path/ })
  await t.throwsAsync(async () => addon.getReport('sev-guest', '/dev/null\0/../sev-guest', data), { instanceOf: TypeError, message: /path/ })
  await t.throwsAsync(async () => addon.getReport('sev-guest', '/dev/sev-guest', Buffer.alloc(63)), { instanceOf: RangeError })
})
