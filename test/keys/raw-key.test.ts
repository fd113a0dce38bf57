import test from 'ava'
import { decodeRawKey } from '../../src/keys/raw-key.js'
import { rawKeyProvider, type KeySpec } from '../../src/keys/provider.js'
import { KeyError } from '../../src/keys/errors.js'
import { EncfsError } from '../../src/errors/encfs-error.js'
import { loadConfig } from '../../src/config/load.js'
import { planFilesystems } from '../../src/config/plan.js'
import { captureLogger } from '../config/fixtures.js'

function keyError(fn: () => unknown): KeyError {
  let caught: unknown
  try {
    fn()
  } catch (err) {
    caught = err
  }
  if (!(caught instanceof KeyError)) throw new Error(`expected a KeyError, got ${String(caught)}`)
  return caught
}

test('decodeRawKey gives the bytes of the hex, in either case', (t) => {
  t.deepEqual(decodeRawKey('00ff10aB', 'azure_filesystems[0]'), Buffer.from([0x00, 0xff, 0x10, 0xab]))
  t.deepEqual(decodeRawKey('DEADBEEF', 'x'), decodeRawKey('deadbeef', 'x'))
  const key = decodeRawKey('11'.repeat(32), 'x')
  t.is(key.length, 32)
  t.true(key.every((b) => b === 0x11))
})

test('decodeRawKey refuses empty, odd-length and non-hex input, naming where, never the key', (t) => {
  for (const hex of ['', 'abc', '0x0011', 'zz11', '00 11', ' 0011', '0011\n', 'c0ffeeg0', 'c0ffee==']) {
    const err = keyError(() => decodeRawKey(hex, 'azure_filesystems[3]'))
    t.is(err.code, 'KEY_RAW_INVALID', JSON.stringify(hex))
    t.true(err instanceof EncfsError)
    t.is(err.message, 'azure_filesystems[3]: raw_key must be the hex of the key file bytes')
  }
})

test('decodeRawKey does not silently truncate at the first bad digit (as Buffer.from(hex) would)', (t) => {
  t.is(Buffer.from('aabbzz', 'hex').length, 2, 'Node itself truncates')
  t.is(keyError(() => decodeRawKey('aabbzz', 'x')).code, 'KEY_RAW_INVALID')
})

test('rawKeyProvider returns the raw key bytes for a raw spec', async (t) => {
  const { logger } = captureLogger()
  const key = await rawKeyProvider.keyFor({ kind: 'raw', hex: '0102030405060708' }, { index: 0, logger })
  t.deepEqual(key, Buffer.from([1, 2, 3, 4, 5, 6, 7, 8]))
})

test("rawKeyProvider rejects a bad raw spec with KEY_RAW_INVALID at the filesystem's index", async (t) => {
  const { logger } = captureLogger()
  const err = await t.throwsAsync(rawKeyProvider.keyFor({ kind: 'raw', hex: 'abc' }, { index: 2, logger }), { instanceOf: KeyError })
  t.is((err as KeyError).code, 'KEY_RAW_INVALID')
  t.regex(err!.message, /^azure_filesystems\[2\]: raw_key/)
})

test('rawKeyProvider refuses release specs without echoing their token', async (t) => {
  const { logger } = captureLogger()
  const spec: KeySpec = {
    kind: 'release',
    kid: 'k',
    maaEndpoint: 'm.example.net',
    akvEndpoint: 'v.vault.azure.net',
    bearerToken: 'sekrit-token',
    derivation: { salt: '', label: 'Symmetric Encryption Key' },
  }
  const err = await t.throwsAsync(rawKeyProvider.keyFor(spec, { index: 1, logger }), { instanceOf: KeyError })
  t.is((err as KeyError).code, 'KEY_RELEASE_UNAVAILABLE')
  t.regex(err!.message, /^azure_filesystems\[1\]\.key: this key provider takes raw keys only/)
  t.false(err!.message.includes('sekrit'))
})

test('from EncfsSideCarArgs to key bytes: an opted-in raw_key yields exactly its bytes', async (t) => {
  const hex = 'a0'.repeat(16) + 'B1'.repeat(16)
  const json = { azure_filesystems: [{ mount_point: '/mnt/remote/share', azure_url: 'file:///img', raw_key: hex }] }
  const { config } = loadConfig({ env: { EncfsSideCarArgs: Buffer.from(JSON.stringify(json)).toString('base64') } })
  const cap = captureLogger()
  const [plan] = planFilesystems(config, { allowRawKey: true, logger: cap.logger })
  const key = await rawKeyProvider.keyFor(plan!.key, { index: plan!.index, logger: cap.logger })
  t.deepEqual(key, Buffer.concat([Buffer.alloc(16, 0xa0), Buffer.alloc(16, 0xb1)]))
  t.false(cap.text().toLowerCase().includes('a0a0a0a0'), 'the key is never logged')
})
