import test from 'ava'
import { planFilesystems } from '../../src/config/plan.js'
import { DEFAULT_DERIVATION_LABEL } from '../../src/skr/derive.js'
import { validateConfig } from '../../src/config/validate.js'
import type { EncfsConfig } from '../../src/config/schema.js'
import { asConfigError, captureLogger, rawFs, releaseFs, sampleJson } from './fixtures.js'

const RAW = 'a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90'

const config = (...filesystems: unknown[]): EncfsConfig => validateConfig({ azure_filesystems: filesystems })

function planError(cfg: EncfsConfig, allowRawKey: boolean, logger = captureLogger().logger) {
  let caught: unknown
  try {
    planFilesystems(cfg, { allowRawKey, logger })
  } catch (err) {
    caught = err
  }
  return asConfigError(caught)
}

test('the remotefs README sample plans two key releases with their layout', (t) => {
  const plans = planFilesystems(validateConfig(sampleJson('remotefs-readme-sample.json')), { allowRawKey: false })
  t.deepEqual(plans, [
    {
      index: 0,
      mountPoint: '/remotemounts/share1',
      parentDir: '/remotemounts',
      mountDir: '/remotemounts/.filesystem-0',
      symlinkTarget: '.filesystem-0',
      url: 'https://samplename.blob.core.windows.net/public-container/image-encrypted-1.img',
      private: true,
      readWrite: false,
      unlock: 'auto',
      mounter: 'auto',
      key: {
        kind: 'release',
        kid: 'EncryptedFilesystemsContainer',
        kty: 'RSA-HSM',
        maaEndpoint: 'sharedneu.neu.attest.azure.net',
        akvEndpoint: 'avaultname.vault.azure.net',
        derivation: { salt: '92a631483ca875aad7e2477da755d58cac3876b77d10bcdd7b33bfa11e7d8b8e', label: 'Encryption Key' },
      },
    },
    {
      index: 1,
      mountPoint: '/remotemounts/share2',
      parentDir: '/remotemounts',
      mountDir: '/remotemounts/.filesystem-1',
      symlinkTarget: '.filesystem-1',
      url: 'https://myname.blob.core.windows.net/private-container/image-encrypted-2.img',
      private: true,
      readWrite: false,
      unlock: 'auto',
      mounter: 'auto',
      key: {
        kind: 'release',
        kid: 'EncryptedFilesystemsContainer',
        maaEndpoint: 'sharedneu.neu.attest.azure.net',
        akvEndpoint: 'amanagedhsmname.managedhsm.azure.net',
        derivation: { salt: '', label: 'Symmetric Encryption Key' },
      },
    },
  ])
})

test("the default derivation label is the Go sidecar's, also for an empty label", (t) => {
  t.is(DEFAULT_DERIVATION_LABEL, 'Symmetric Encryption Key')
  const [plan] = planFilesystems(config(releaseFs({ key_derivation: { salt: 'aa', label: '' } })), { allowRawKey: false })
  t.deepEqual(plan!.key, {
    kind: 'release',
    kid: 'MyKey',
    maaEndpoint: 'sharedneu.neu.attest.azure.net',
    akvEndpoint: 'myvault.vault.azure.net',
    derivation: { salt: 'aa', label: 'Symmetric Encryption Key' },
  })
})

test('a bearer_token is carried to the release spec', (t) => {
  const [plan] = planFilesystems(config(releaseFs({ key: { kid: 'k', authority: { endpoint: 'm.example.net' }, akv: { endpoint: 'v.vault.azure.net', bearer_token: 'tok' } } })), {
    allowRawKey: false,
  })
  t.is(plan!.key.kind === 'release' ? plan!.key.bearerToken : 'not a release', 'tok')
})

test('directories are siblings of each mount point, numbered by list position', (t) => {
  const plans = planFilesystems(config(rawFs({ mount_point: '/mnt/remote/a' }), rawFs({ mount_point: '/data/b/' }), rawFs({ mount_point: '/c' })), { allowRawKey: true })
  t.deepEqual(
    plans.map((p) => [p.mountPoint, p.parentDir, p.mountDir, p.symlinkTarget]),
    [
      ['/mnt/remote/a', '/mnt/remote', '/mnt/remote/.filesystem-0', '.filesystem-0'],
      ['/data/b', '/data', '/data/.filesystem-1', '.filesystem-1'],
      ['/c', '/', '/.filesystem-2', '.filesystem-2'],
    ],
  )
})

test("--unlock and --mounter are defaults that a filesystem's own unlock and mounter override", (t) => {
  const cfg = config(rawFs({ mount_point: '/m/a' }), rawFs({ mount_point: '/m/b', unlock: 'kernel', mounter: 'loop' }))
  const [a, b] = planFilesystems(cfg, { allowRawKey: true, unlock: 'userspace', mounter: 'fuse2fs' })
  t.is(a!.unlock, 'userspace')
  t.is(a!.mounter, 'fuse2fs')
  t.is(b!.unlock, 'kernel')
  t.is(b!.mounter, 'loop')
  const [c] = planFilesystems(config(rawFs()), { allowRawKey: true })
  t.is(c!.unlock, 'auto')
  t.is(c!.mounter, 'auto')
})

test('cache settings, azure_url_private and read_write are carried over', (t) => {
  const [plan] = planFilesystems(config(rawFs({ azure_url_private: true, read_write: true, cache: { block_size_kib: 1024, memory_mib: 32 } })), { allowRawKey: true })
  t.true(plan!.private)
  t.true(plan!.readWrite)
  t.deepEqual(plan!.cache, { block_size_kib: 1024, memory_mib: 32, readahead_blocks: undefined })
  const [none] = planFilesystems(config(rawFs()), { allowRawKey: true })
  t.false('cache' in none!)
})

test('raw_key without the opt-in is refused, saying how to opt in, without showing the key', (t) => {
  const cap = captureLogger()
  const err = planError(config(rawFs({ raw_key: RAW })), false, cap.logger)
  t.is(err.code, 'CONFIG_INVALID')
  t.is(err.issues.length, 1)
  t.is(err.issues[0]!.path, 'azure_filesystems[0].raw_key')
  t.true(err.message.includes('--allow-raw-key'))
  t.true(err.message.includes('EncfsAllowRawKey=true'))
  t.regex(err.message, /azure_filesystems\[0\]\.raw_key: raw keys are a test mode/)
  t.false(err.message.includes(RAW.slice(0, 8)))
  t.false(cap.text().includes(RAW.slice(0, 8)))
})

test('without the opt-in every raw-key-only filesystem is reported at once', (t) => {
  const err = planError(config(rawFs({ mount_point: '/m/a' }), releaseFs({ mount_point: '/m/b' }), rawFs({ mount_point: '/m/c' })), false)
  t.deepEqual(
    err.issues.map((i) => i.path),
    ['azure_filesystems[0].raw_key', 'azure_filesystems[2].raw_key'],
  )
  t.regex(err.message, /\(2 problems\)/)
})

test('raw_key with the opt-in is used, and a warning says it is a test mode, without the key', (t) => {
  const cap = captureLogger()
  const plans = planFilesystems(config(rawFs({ mount_point: '/m/a' }), rawFs({ mount_point: '/m/b', raw_key: RAW })), { allowRawKey: true, logger: cap.logger })
  t.deepEqual(
    plans.map((p) => p.key),
    [
      { kind: 'raw', hex: '00112233445566778899aabbccddeeff' },
      { kind: 'raw', hex: RAW },
    ],
  )
  const warnings = cap.lines().filter((l) => l.level === 40)
  t.is(warnings.length, 2)
  t.deepEqual(
    warnings.map((w) => w.filesystem),
    [0, 1],
  )
  t.regex(String(warnings[1]!.msg), /^azure_filesystems\[1\]: using raw_key from the configuration\. This is a TEST MODE/)
  t.false(cap.text().includes(RAW.slice(0, 8)), 'the key is not logged')
  t.false(cap.text().includes('00112233'), 'the key is not logged')
})

test('raw_key next to key.kid without the opt-in: the key is released and a warning says raw_key was ignored', (t) => {
  const cap = captureLogger()
  const [plan] = planFilesystems(config(releaseFs({ raw_key: RAW })), { allowRawKey: false, logger: cap.logger })
  t.is(plan!.key.kind, 'release')
  const warnings = cap.lines().filter((l) => l.level === 40)
  t.is(warnings.length, 1)
  t.regex(String(warnings[0]!.msg), /^azure_filesystems\[0\]\.raw_key is ignored: raw keys need --allow-raw-key \(or EncfsAllowRawKey=true\)/)
  t.false(cap.text().includes(RAW.slice(0, 8)))
})

test('raw_key next to key.kid with the opt-in: the raw key wins', (t) => {
  const cap = captureLogger()
  const [plan] = planFilesystems(config(releaseFs({ raw_key: RAW })), { allowRawKey: true, logger: cap.logger })
  t.deepEqual(plan!.key, { kind: 'raw', hex: RAW })
  t.is(cap.lines().filter((l) => l.level === 40).length, 1)
})

test('key release needs no opt-in and logs nothing at warning level', (t) => {
  const cap = captureLogger()
  const plans = planFilesystems(config(releaseFs()), { allowRawKey: false, logger: cap.logger })
  t.is(plans.length, 1)
  t.is(cap.lines().filter((l) => Number(l.level) >= 40).length, 0)
})
