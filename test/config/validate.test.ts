import test from 'ava'
import { validateConfig } from '../../src/config/validate.js'
import type { ConfigError } from '../../src/config/errors.js'
import { BLOB_URL, asConfigError, rawFs, releaseFs, sampleJson, sampleText } from './fixtures.js'

function invalid(json: unknown, source?: string): ConfigError {
  let caught: unknown
  try {
    validateConfig(json, source)
  } catch (err) {
    caught = err
  }
  const err = asConfigError(caught)
  return err
}

/** The issues as "path: message" lines, the way the CLI prints them. */
function lines(err: ConfigError): string[] {
  return err.issues.map((i) => `${i.path}: ${i.message}`)
}

function oneIssue(json: unknown): { path: string; message: string; err: ConfigError } {
  const err = invalid(json)
  if (err.issues.length !== 1) throw new Error(`expected one issue, got:\n${lines(err).join('\n')}`)
  const [issue] = err.issues
  return { ...issue!, err }
}

const cfg = (...filesystems: unknown[]) => ({ azure_filesystems: filesystems })

// --- the sample configurations (docs/test-vectors.md#config) -------------------------------------------------------------------

test('the remotefs README sample validates with the values it spells out', (t) => {
  const config = validateConfig(sampleJson('remotefs-readme-sample.json'))
  t.is(config.azure_info, undefined)
  t.is(config.azure_filesystems.length, 2)
  const [a, b] = config.azure_filesystems
  t.is(a!.mount_point, '/remotemounts/share1')
  t.is(a!.azure_url, 'https://samplename.blob.core.windows.net/public-container/image-encrypted-1.img')
  t.true(a!.azure_url_private)
  t.false(a!.read_write)
  t.is(a!.key?.kid, 'EncryptedFilesystemsContainer')
  t.is(a!.key?.kty, 'RSA-HSM')
  t.is(a!.key?.authority?.endpoint, 'sharedneu.neu.attest.azure.net')
  t.is(a!.key?.akv?.endpoint, 'avaultname.vault.azure.net')
  t.deepEqual(a!.key_derivation, { salt: '92a631483ca875aad7e2477da755d58cac3876b77d10bcdd7b33bfa11e7d8b8e', label: 'Encryption Key' })
  t.is(a!.raw_key, undefined)
  t.is(b!.mount_point, '/remotemounts/share2')
  t.is(b!.azure_url, 'https://myname.blob.core.windows.net/private-container/image-encrypted-2.img')
  t.true(b!.azure_url_private)
  t.false(b!.read_write, 'a missing read_write is false')
  t.is(b!.key?.kty, undefined)
  t.is(b!.key?.akv?.endpoint, 'amanagedhsmname.managedhsm.azure.net')
  t.is(b!.key_derivation, undefined)
})

test('the encfs-sidecar-args template is rejected while its placeholders are unfilled, naming each one Go cannot run with', (t) => {
  const err = invalid(sampleJson('encfs-sidecar-args.template.json'))
  t.is(err.code, 'CONFIG_INVALID')
  const paths = err.issues.map((i) => i.path).sort()
  t.deepEqual(paths, ['azure_filesystems[0].azure_url', 'azure_filesystems[0].key.akv.endpoint', 'azure_filesystems[0].key.authority.endpoint'])
  t.regex(err.message, /azure_filesystems\[0\]\.azure_url: must be a blob URL/)
})

test('the encfs-sidecar-args template validates once a user fills in its placeholders', (t) => {
  const filled = sampleText('encfs-sidecar-args.template.json')
    .replace('<azure-blob-storage-url>', 'https://myaccount.blob.core.windows.net/encfs/encfs.img')
    .replace('<key-vault-akv-key-identifier>', 'EncfsKey')
    .replace('<key-type-of-key-imported-to-akv>', 'RSA-HSM')
    .replace('<authority-of-key-imported-to-akv>', 'sharedneu.neu.attest.azure.net')
    .replace('<key-vault-akv-endpoint>', 'myvault.vault.azure.net')
    .replace('<salt-for-key-derivation-valid-only-for-RSA-HSM-keys>', 'ab'.repeat(32))
    .replace('<label-for-derived-key-valid-only-for-RSA-HSM-keys>', 'Model Encryption Key')
  t.false(filled.includes('<'), 'every placeholder was replaced')
  const [fs] = validateConfig(JSON.parse(filled)).azure_filesystems
  t.is(fs!.mount_point, '/mnt/remote/share')
  t.is(fs!.azure_url, 'https://myaccount.blob.core.windows.net/encfs/encfs.img')
  t.true(fs!.azure_url_private)
  t.true(fs!.read_write)
  t.is(fs!.key?.kid, 'EncfsKey')
  t.is(fs!.key?.kty, 'RSA-HSM')
  t.deepEqual(fs!.key_derivation, { salt: 'ab'.repeat(32), label: 'Model Encryption Key' })
})

test('the skr sidecar arguments are not a remotefs configuration: azure_filesystems is required', (t) => {
  const { path, message, err } = oneIssue(sampleJson('skr-sidecar-args.kata-sample.json'))
  t.is(err.code, 'CONFIG_INVALID')
  t.is(path, 'azure_filesystems')
  t.regex(message, /^is required/)
})

test('the importkey configuration is not a remotefs configuration either', (t) => {
  const { path, message } = oneIssue(sampleJson('importkeyconfig.readme-sample.json'))
  t.is(path, 'azure_filesystems')
  t.regex(message, /^is required/)
})

test("the skr sample's certcache is accepted as azure_info.certcache", (t) => {
  const skr = sampleJson('skr-sidecar-args.kata-sample.json') as { certcache: unknown }
  const config = validateConfig({ azure_info: { certcache: skr.certcache, identity: { client_id: 'abc-123' } }, azure_filesystems: [releaseFs()] })
  t.deepEqual(config.azure_info?.certcache, {
    endpoint_type: 'LocalTHIM',
    endpoint: '169.254.169.254/metadata/THIM/amd/certification',
    tee_type: undefined,
    api_version: undefined,
    client_id: undefined,
  })
  t.is(config.azure_info?.identity?.client_id, 'abc-123')
})

test("certcache.endpoint_type in another letter case is read as Go's name, with a warning; an unknown type is refused", async (t) => {
  const { validateSkrConfig } = await import('../../src/config/validate.js')
  const skr = sampleJson('skr-sidecar-args.kata-sample.json') as { certcache: Record<string, string> }
  for (const [given, canonical] of [
    ['localthim', 'LocalTHIM'],
    ['LOCALTHIM', 'LocalTHIM'],
    ['azcache', 'AzCache'],
    ['amd', 'AMD'],
  ] as const) {
    const certcache = { ...skr.certcache, endpoint_type: given }
    const warnings: { path: string; message: string }[] = []
    t.is(validateConfig({ azure_info: { certcache }, azure_filesystems: [releaseFs()] }, 'configuration', warnings).azure_info?.certcache?.endpoint_type, canonical)
    t.deepEqual(
      warnings.map((w) => w.path),
      ['azure_info.certcache.endpoint_type'],
    )
    t.regex(warnings[0]!.message, new RegExp(`^"${given}" is read as "${canonical}" \\(the Go sidecar accepts it at start but fails with "invalid endpoint type"`))
    const skrWarnings: { path: string; message: string }[] = []
    t.is(validateSkrConfig({ certcache }, 'SkrSideCarArgs', skrWarnings).certcache?.endpoint_type, canonical)
    t.is(skrWarnings.length, 1)
  }
  const { path, message } = oneIssue({ azure_info: { certcache: { ...skr.certcache, endpoint_type: 'THIM' } }, azure_filesystems: [releaseFs()] })
  t.is(path, 'azure_info.certcache.endpoint_type')
  t.is(message, 'must be one of AMD, AzCache, LocalTHIM, got "THIM"')
})

// --- Go encoding/json rules ------------------------------------------------------------------

test('member names match case-insensitively, as Go encoding/json does', (t) => {
  const config = validateConfig({
    Azure_Info: { IDENTITY: { Client_Id: 'cid' }, CertCache: { Endpoint_Type: 'AzCache', ENDPOINT: 'global.acccache.azure.net' } },
    AZURE_FILESYSTEMS: [
      {
        Mount_Point: '/mnt/remote/share',
        AZURE_URL: BLOB_URL,
        Azure_Url_Private: true,
        READ_WRITE: true,
        Key: { KID: 'k1', Kty: 'oct-HSM', Key_Ops: ['decrypt'], Authority: { EndPoint: 'maa.example.net' }, AKV: { Endpoint: 'v.vault.azure.net', Bearer_Token: 'tok' } },
        Key_Derivation: { SALT: 'aabb', Label: 'L' },
        Unlock: 'userspace',
        MOUNTER: 'fuse2fs',
        Cache: { Block_Size_KiB: 512, MEMORY_MIB: 64, readahead_BLOCKS: 2 },
      },
    ],
  })
  t.is(config.azure_info?.identity?.client_id, 'cid')
  t.is(config.azure_info?.certcache?.endpoint_type, 'AzCache')
  t.is(config.azure_info?.certcache?.endpoint, 'global.acccache.azure.net')
  const [fs] = config.azure_filesystems
  t.is(fs!.mount_point, '/mnt/remote/share')
  t.is(fs!.azure_url, BLOB_URL)
  t.true(fs!.azure_url_private)
  t.true(fs!.read_write)
  t.is(fs!.key?.kid, 'k1')
  t.is(fs!.key?.kty, 'oct-HSM')
  t.deepEqual(fs!.key?.key_ops, ['decrypt'])
  t.is(fs!.key?.authority?.endpoint, 'maa.example.net')
  t.is(fs!.key?.akv?.endpoint, 'v.vault.azure.net')
  t.is(fs!.key?.akv?.bearer_token, 'tok')
  t.deepEqual(fs!.key_derivation, { salt: 'aabb', label: 'L' })
  t.is(fs!.unlock, 'userspace')
  t.is(fs!.mounter, 'fuse2fs')
  t.deepEqual(fs!.cache, { block_size_kib: 512, memory_mib: 64, readahead_blocks: 2 })
})

test('case-insensitive names are still checked: a wrongly typed MOUNT_POINT is reported', (t) => {
  const { path, message } = oneIssue(cfg({ MOUNT_POINT: 5, azure_url: BLOB_URL, raw_key: '00' }))
  t.is(path, 'azure_filesystems[0].mount_point')
  t.is(message, 'must be a string, got a number')
})

test('unknown members are ignored, at every level', (t) => {
  const config = validateConfig({
    version: 2,
    azure_info: { certcache: {}, identity: {}, maaconfig: { user_agent: 'x' } },
    azure_filesystems: [
      releaseFs({ comment: 'prod', key: { kid: 'k', extra: [1], authority: { endpoint: 'm.example.net', x: 1 }, akv: { endpoint: 'v.vault.azure.net', y: {} } } }),
    ],
  })
  t.is(config.azure_filesystems[0]!.key?.kid, 'k')
  t.false('version' in config)
  t.false('comment' in config.azure_filesystems[0]!)
})

test('null members count as absent, as in Go: booleans false, objects undefined', (t) => {
  const [fs] = validateConfig(cfg(rawFs({ azure_url_private: null, read_write: null, key_derivation: null, unlock: null, cache: null }))).azure_filesystems
  t.false(fs!.azure_url_private)
  t.false(fs!.read_write)
  t.is(fs!.key_derivation, undefined)
  t.is(fs!.unlock, undefined)
  t.is(fs!.cache, undefined)
})

// --- top level and the list ------------------------------------------------------------------

test('a top level that is not an object is reported as "(top level)"', (t) => {
  for (const [json, got] of [
    [[], 'an array'],
    [null, 'null'],
    ['x', 'a string'],
    [7, 'a number'],
  ] as const) {
    const { path, message, err } = oneIssue(json)
    t.is(err.code, 'CONFIG_INVALID')
    t.is(path, '(top level)')
    t.is(message, `must be a JSON object, got ${got}`)
  }
})

test('a missing or null azure_filesystems is required', (t) => {
  for (const json of [{}, { azure_filesystems: null }, { azure_info: {} }]) {
    const { path, message } = oneIssue(json)
    t.is(path, 'azure_filesystems')
    t.is(message, 'is required: a list of at least one filesystem')
  }
})

test('an empty azure_filesystems list is accepted, as Go runs it (mounting nothing)', (t) => {
  t.deepEqual(validateConfig({ azure_filesystems: [] }).azure_filesystems, [])
})

test('azure_filesystems that is not an array is a type error', (t) => {
  const { path, message } = oneIssue({ azure_filesystems: rawFs() })
  t.is(path, 'azure_filesystems')
  t.is(message, 'must be an array, got an object')
})

test('a list element that is not an object is reported at its index', (t) => {
  const { path, message } = oneIssue(cfg(rawFs(), '/mnt/x'))
  t.is(path, 'azure_filesystems[1]')
  t.is(message, 'must be an object, got a string')
})

// --- mount_point -------------------------------------------------------------------------------

test("a relative mount_point gives the README's message at the right index", (t) => {
  const err = invalid(cfg(rawFs({ mount_point: '/mnt/a' }), rawFs({ mount_point: 'mnt/x' })))
  t.is(err.code, 'CONFIG_INVALID')
  t.deepEqual(lines(err), ['azure_filesystems[1].mount_point: must be an absolute path, got "mnt/x"'])
  t.true(err.message.includes('azure_filesystems[1].mount_point: must be an absolute path, got "mnt/x"'))
  t.regex(err.message, /^invalid configuration \(1 problem\):/)
})

test('a missing, empty or null mount_point is required', (t) => {
  for (const over of [{ mount_point: undefined }, { mount_point: '' }, { mount_point: null }]) {
    const fs = rawFs(over)
    if (over.mount_point === undefined) delete fs.mount_point
    const { path, message } = oneIssue(cfg(fs))
    t.is(path, 'azure_filesystems[0].mount_point', JSON.stringify(over))
    t.regex(message, /^is required/)
  }
})

test('mount_point must not contain ".." or be the root', (t) => {
  t.is(oneIssue(cfg(rawFs({ mount_point: '/mnt/../etc' }))).message, 'must not contain ".." segments, got "/mnt/../etc"')
  for (const root of ['/', '//', '/./']) {
    const { path, message } = oneIssue(cfg(rawFs({ mount_point: root })))
    t.is(path, 'azure_filesystems[0].mount_point')
    t.is(message, 'must not be "/"')
  }
})

test("a mount_point named like remotefs's own mount directories (.filesystem-N) is refused", (t) => {
  const { path, message } = oneIssue(cfg(rawFs({ mount_point: '/mnt/a' }), rawFs({ mount_point: '/mnt/.filesystem-0' })))
  t.is(path, 'azure_filesystems[1].mount_point')
  t.regex(message, /must not be named "\.filesystem-<n>"/)
  t.is(validateConfig(cfg(rawFs({ mount_point: '/mnt/.filesystem-x' }))).azure_filesystems.length, 1)
})

test('mount_point is normalised (double and trailing slashes, "." segments)', (t) => {
  const [fs] = validateConfig(cfg(rawFs({ mount_point: '/mnt//remote/./share/' }))).azure_filesystems
  t.is(fs!.mount_point, '/mnt/remote/share')
})

test('a duplicate mount_point names both filesystems, also after normalisation', (t) => {
  const err = invalid(cfg(rawFs({ mount_point: '/mnt/a' }), rawFs({ mount_point: '/mnt/b' }), rawFs({ mount_point: '/mnt//a/' })))
  t.deepEqual(lines(err), ['azure_filesystems[2].mount_point: "/mnt/a" is already the mount point of azure_filesystems[0]; each filesystem needs its own'])
})

test('nested mount points are rejected in either order; a shared name prefix is fine', (t) => {
  const inner = invalid(cfg(rawFs({ mount_point: '/mnt/a' }), rawFs({ mount_point: '/mnt/a/b' })))
  t.deepEqual(lines(inner), ['azure_filesystems[1].mount_point: "/mnt/a/b" is nested with azure_filesystems[0].mount_point "/mnt/a"; mount points must not contain each other'])
  const outer = invalid(cfg(rawFs({ mount_point: '/mnt/a/b/c' }), rawFs({ mount_point: '/mnt/a' })))
  t.is(outer.issues.length, 1)
  t.is(outer.issues[0]!.path, 'azure_filesystems[1].mount_point')
  t.regex(outer.issues[0]!.message, /is nested with azure_filesystems\[0\]\.mount_point "\/mnt\/a\/b\/c"/)
  const ok = validateConfig(cfg(rawFs({ mount_point: '/mnt/a' }), rawFs({ mount_point: '/mnt/ab' }), rawFs({ mount_point: '/mnt/a-b/c' })))
  t.deepEqual(
    ok.azure_filesystems.map((f) => f.mount_point),
    ['/mnt/a', '/mnt/ab', '/mnt/a-b/c'],
  )
})

// --- azure_url ---------------------------------------------------------------------------------

test('accepted azure_url forms: https (with SAS), http to loopback, file:// and absolute paths', (t) => {
  const urls = [
    BLOB_URL,
    `${BLOB_URL}?sv=2022-11-02&ss=b&sp=r&sig=abc%2Fdef%3D`,
    'http://127.0.0.1:10000/devstoreaccount1/c/image.img',
    'http://localhost:10000/devstoreaccount1/c/image.img',
    'http://127.9.8.7/devstoreaccount1/c/image.img',
    'http://[::1]:10000/devstoreaccount1/c/image.img',
    'file:///var/images/encfs.img',
    '/var/images/encfs.img',
  ]
  const config = validateConfig(cfg(...urls.map((u, i) => rawFs({ mount_point: `/mnt/fs${i}`, azure_url: u }))))
  t.deepEqual(
    config.azure_filesystems.map((f) => f.azure_url),
    urls,
    'kept verbatim',
  )
})

test('plain http to any host is accepted for public and SAS blobs, as Go reads it, with a warning; never with azure_url_private (a bearer token)', (t) => {
  const url = 'http://acct.blob.core.windows.net/c/b.img?sv=2022-11-02&sig=Zm9vYmFy'
  const warnings: { path: string; message: string }[] = []
  t.is(validateConfig(cfg(rawFs({ azure_url: url })), 'configuration', warnings).azure_filesystems[0]!.azure_url, url)
  t.deepEqual(
    warnings.map((w) => w.path),
    ['azure_filesystems[0].azure_url'],
  )
  t.regex(warnings[0]!.message, /^is plain http to acct\.blob\.core\.windows\.net: the image \(and a SAS signature.*\) travels unencrypted; the Go sidecar accepts it/)
  t.false(warnings[0]!.message.includes('Zm9vYmFy'), 'no SAS signature in the warning')
  for (const host of ['acct.blob.core.windows.net', '127.0.0.1:10000']) {
    const { path, message } = oneIssue(cfg(rawFs({ azure_url: `http://${host}/c/b.img`, azure_url_private: true })))
    t.is(path, 'azure_filesystems[0].azure_url')
    t.is(message, `is plain http, and azure_filesystems[0].azure_url_private: true sends a bearer token with every request, which is never sent unencrypted: use https://${host}/…`)
  }
  const loopback: { path: string; message: string }[] = []
  validateConfig(cfg(rawFs({ azure_url: 'http://127.0.0.1:10000/devstoreaccount1/c/b.img' })), 'configuration', loopback)
  t.deepEqual(loopback, [], 'Azurite on loopback is no warning')
})

test('unsupported URL schemes are rejected naming the scheme', (t) => {
  for (const [url, scheme] of [
    ['ftp://host/b.img', 'ftp:'],
    ['s3://bucket/b.img', 's3:'],
    ['wasbs://c@acct.blob.core.windows.net/b', 'wasbs:'],
  ] as const) {
    const { path, message } = oneIssue(cfg(rawFs({ azure_url: url })))
    t.is(path, 'azure_filesystems[0].azure_url')
    t.is(message, `unsupported scheme "${scheme}": use https://, file:// or an absolute path`)
  }
})

test('a relative path or a bare host is not a URL', (t) => {
  for (const url of ['images/encfs.img', 'acct.blob.core.windows.net/c/b.img']) {
    const { path, message } = oneIssue(cfg(rawFs({ azure_url: url })))
    t.is(path, 'azure_filesystems[0].azure_url')
    t.regex(message, /^must be a blob URL \(https:\/\/<account>\.blob\.core\.windows\.net\/<container>\/<blob>\), a file:\/\/ URL or an absolute path, got "/)
  }
})

test('a missing, empty or null azure_url is required', (t) => {
  for (const value of [undefined, '', null]) {
    const fs = rawFs({ azure_url: value })
    if (value === undefined) delete fs.azure_url
    const { path, message } = oneIssue(cfg(fs))
    t.is(path, 'azure_filesystems[0].azure_url', String(value))
    t.regex(message, /^is required/)
  }
})

test('SAS signatures never appear in URL error messages', (t) => {
  const sig = 'sig=Zm9vYmFyU2VjcmV0U2lnbmF0dXJl'
  for (const [url, over] of [
    [`not a url?sv=1&${sig}`, {}],
    [`http://evil.example.com/c/b?${sig}`, { azure_url_private: true }],
    [`ftp://host/b?${sig}`, {}],
  ] as const) {
    const err = invalid(cfg(rawFs({ azure_url: url, ...over })))
    t.is(err.issues[0]!.path, 'azure_filesystems[0].azure_url')
    t.false(err.message.includes('Zm9vYmFy'), err.message)
    t.false(JSON.stringify(err.issues).includes('Zm9vYmFy'))
  }
})

// --- types ------------------------------------------------------------------------------------------

test('wrongly typed members are reported with their path and the type found', (t) => {
  const cases: [Record<string, unknown>, string, string][] = [
    [{ mount_point: ['/mnt/x'] }, 'azure_filesystems[0].mount_point', 'must be a string, got an array'],
    [{ azure_url: { url: BLOB_URL } }, 'azure_filesystems[0].azure_url', 'must be a string, got an object'],
    [{ azure_url_private: 'true' }, 'azure_filesystems[0].azure_url_private', 'must be true or false, got a string'],
    [{ read_write: 0 }, 'azure_filesystems[0].read_write', 'must be true or false, got a number'],
    [{ key_derivation: ['aa'] }, 'azure_filesystems[0].key_derivation', 'must be an object, got an array'],
    [{ key_derivation: { salt: 12 } }, 'azure_filesystems[0].key_derivation.salt', 'must be a string, got a number'],
    [{ key_derivation: { label: false } }, 'azure_filesystems[0].key_derivation.label', 'must be a string, got a boolean'],
    [{ unlock: 1 }, 'azure_filesystems[0].unlock', 'must be a string, got a number'],
    [{ cache: 'big' }, 'azure_filesystems[0].cache', 'must be an object, got a string'],
  ]
  for (const [over, path, message] of cases) {
    const issue = oneIssue(cfg(rawFs(over)))
    t.is(issue.path, path, JSON.stringify(over))
    t.is(issue.message, message, JSON.stringify(over))
  }
})

test('wrongly typed key members are reported with their path', (t) => {
  const key = { kid: 'k', authority: { endpoint: 'm.example.net' }, akv: { endpoint: 'v.vault.azure.net' } }
  const cases: [Record<string, unknown>, string, string][] = [
    [{ key: 'MyKey' }, 'azure_filesystems[0].key', 'must be an object, got a string'],
    [{ key: { ...key, kty: 3 } }, 'azure_filesystems[0].key.kty', 'must be a string, got a number'],
    [{ key: { ...key, key_ops: 'decrypt' } }, 'azure_filesystems[0].key.key_ops', 'must be an array of strings'],
    [{ key: { ...key, key_ops: ['decrypt', 1] } }, 'azure_filesystems[0].key.key_ops', 'must be an array of strings'],
    [{ key: { ...key, authority: { endpoint: 'm.example.net', api_version: 7 } } }, 'azure_filesystems[0].key.authority.api_version', 'must be a string, got a number'],
    [{ key: { ...key, akv: { endpoint: 'v.vault.azure.net', bearer_token: 42 } } }, 'azure_filesystems[0].key.akv.bearer_token', 'must be a string, got a number'],
  ]
  for (const [over, path, message] of cases) {
    const issue = oneIssue(cfg(rawFs(over)))
    t.is(issue.path, path, JSON.stringify(over))
    t.is(issue.message, message, JSON.stringify(over))
  }
})

test('wrongly typed azure_info members are reported with their path', (t) => {
  const cases: [unknown, string, string][] = [
    ['x', 'azure_info', 'must be an object, got a string'],
    [{ identity: 'cid' }, 'azure_info.identity', 'must be an object, got a string'],
    [{ identity: { client_id: 1 } }, 'azure_info.identity.client_id', 'must be a string, got a number'],
    [{ certcache: [] }, 'azure_info.certcache', 'must be an object, got an array'],
    [{ certcache: { endpoint_type: 'THIM' } }, 'azure_info.certcache.endpoint_type', 'must be one of AMD, AzCache, LocalTHIM, got "THIM"'],
  ]
  for (const [info, path, message] of cases) {
    const issue = oneIssue({ azure_info: info, azure_filesystems: [rawFs()] })
    t.is(issue.path, path, JSON.stringify(info))
    t.is(issue.message, message, JSON.stringify(info))
  }
})

test('azure_info.identity accepts client_id and the resource_id extension; empty strings are dropped', (t) => {
  const a = validateConfig({
    azure_info: { identity: { client_id: 'cid', resource_id: '/subscriptions/s/resourceGroups/g/providers/Microsoft.ManagedIdentity/userAssignedIdentities/i' } },
    azure_filesystems: [rawFs()],
  })
  t.deepEqual(a.azure_info?.identity, { client_id: 'cid', resource_id: '/subscriptions/s/resourceGroups/g/providers/Microsoft.ManagedIdentity/userAssignedIdentities/i' })
  const b = validateConfig({ azure_info: { identity: { client_id: '' } }, azure_filesystems: [rawFs()] })
  t.deepEqual(b.azure_info?.identity, { client_id: undefined, resource_id: undefined })
})

// --- key, endpoints, derivation ---------------------------------------------------------------------

test('a filesystem needs key.kid or raw_key', (t) => {
  const fs = rawFs()
  delete fs.raw_key
  for (const f of [fs, { ...fs, raw_key: '' }, { ...fs, key: { kid: '' } }, { ...fs, key: {} }]) {
    const { path, message } = oneIssue(cfg(f))
    t.is(path, 'azure_filesystems[0].key')
    t.regex(message, /^needs key\.kid \(with key\.authority\.endpoint and key\.akv\.endpoint\)/)
  }
})

test('key.kid needs both the MAA and the Key Vault endpoint', (t) => {
  const err = invalid(cfg(releaseFs({ key: { kid: 'k' } })))
  t.deepEqual(
    err.issues.map((i) => i.path),
    ['azure_filesystems[0].key.authority.endpoint', 'azure_filesystems[0].key.akv.endpoint'],
  )
  t.regex(err.issues[0]!.message, /^is required with key\.kid: the MAA host/)
  t.regex(err.issues[1]!.message, /^is required with key\.kid: the Key Vault or Managed HSM host/)
})

test('endpoints are host names: a scheme or a path is rejected', (t) => {
  const withScheme = oneIssue(cfg(releaseFs({ key: { kid: 'k', authority: { endpoint: 'https://sharedneu.neu.attest.azure.net' }, akv: { endpoint: 'v.vault.azure.net' } } })))
  t.is(withScheme.path, 'azure_filesystems[0].key.authority.endpoint')
  t.is(withScheme.message, 'must be a host name without a scheme (drop "https://"), got "https://sharedneu.neu.attest.azure.net"')
  const withPath = oneIssue(cfg(releaseFs({ key: { kid: 'k', authority: { endpoint: 'm.example.net' }, akv: { endpoint: 'v.vault.azure.net/keys' } } })))
  t.is(withPath.path, 'azure_filesystems[0].key.akv.endpoint')
  t.is(withPath.message, 'must be a host name with an optional :port, got "v.vault.azure.net/keys"')
  const withPort = validateConfig(cfg(releaseFs({ key: { kid: 'k', authority: { endpoint: 'localhost:8443' }, akv: { endpoint: 'v.vault.azure.net:443' } } })))
  t.is(withPort.azure_filesystems[0]!.key?.authority?.endpoint, 'localhost:8443')
})

test('a key_derivation.salt that is not hex is a warning (Go reads it only for RSA keys); hex and empty salts are taken as they are', (t) => {
  for (const salt of ['abc', 'zz', '0x00', 'aa bb', '<salt-for-key-derivation-valid-only-for-RSA-HSM-keys>']) {
    const warnings: { path: string; message: string }[] = []
    t.is(validateConfig(cfg(releaseFs({ key_derivation: { salt } })), 'configuration', warnings).azure_filesystems[0]!.key_derivation?.salt, salt)
    t.deepEqual(
      warnings.map((w) => w.path),
      ['azure_filesystems[0].key_derivation.salt'],
      salt,
    )
    t.regex(warnings[0]!.message, /^is not hex .*used only when the released key is RSA, and then the mount fails \(as in the Go sidecar\); with an oct key it is ignored$/)
  }
  for (const salt of ['', 'AABB', '92a631483ca875aad7e2477da755d58cac3876b77d10bcdd7b33bfa11e7d8b8e']) {
    t.is(validateConfig(cfg(releaseFs({ key_derivation: { salt } }))).azure_filesystems[0]!.key_derivation?.salt, salt)
  }
})

// --- raw_key --------------------------------------------------------------------------------------------

test('raw_key must be an even number of hex digits, at most 512 bytes, and the message never shows it', (t) => {
  const bad = ['abc', 'zz11', '0x0011', ' 0011', '00 11', 'ab'.repeat(513), 'c0ffee-c0ffee']
  for (const raw of bad) {
    const { path, message, err } = oneIssue(cfg(rawFs({ raw_key: raw })))
    t.is(err.code, 'CONFIG_INVALID')
    t.is(path, 'azure_filesystems[0].raw_key', raw.slice(0, 20))
    t.is(message, 'must be the hex of the key file bytes (an even number of hex digits, at most 512 bytes)')
    const shown = raw.trim().split(/[ -]/)[0]!
    t.false(err.message.includes(shown.slice(0, 6)), `raw_key shown in: ${err.message}`)
  }
})

test('raw_key accepts upper and lower case hex up to exactly 512 bytes', (t) => {
  for (const raw of ['00', 'DEADbeef', 'ab'.repeat(32), 'ab'.repeat(512)]) {
    t.is(validateConfig(cfg(rawFs({ raw_key: raw }))).azure_filesystems[0]!.raw_key, raw)
  }
})

test('a wrongly typed raw_key or bearer_token is reported without its value', (t) => {
  const err = invalid(
    cfg(
      rawFs({ raw_key: 123456789 }),
      releaseFs({
        mount_point: '/mnt/b',
        key: { kid: 'k', authority: { endpoint: 'm.example.net' }, akv: { endpoint: 'v.vault.azure.net', bearer_token: { token: 'eyJhbGciOiJSUzI1NiJ9' } } },
      }),
    ),
  )
  t.deepEqual(lines(err), [
    'azure_filesystems[0].raw_key: must be a string, got a number',
    'azure_filesystems[0].key: needs key.kid (with key.authority.endpoint and key.akv.endpoint) so the key can be released, or raw_key for testing',
    'azure_filesystems[1].key.akv.bearer_token: must be a string, got an object',
  ])
  t.false(err.message.includes('123456789'))
  t.false(err.message.includes('eyJhbGci'))
})

// --- extensions ----------------------------------------------------------------------------------------

test('the unlock and mounter extensions accept their modes and reject anything else', (t) => {
  const [fs] = validateConfig(cfg(rawFs({ unlock: 'kernel', mounter: 'loop' }))).azure_filesystems
  t.is(fs!.unlock, 'kernel')
  t.is(fs!.mounter, 'loop')
  const err = invalid(cfg(rawFs({ unlock: 'dm-crypt', mounter: 'Loop' })))
  t.deepEqual(lines(err), [
    'azure_filesystems[0].unlock: must be one of auto, kernel, userspace, got "dm-crypt"',
    'azure_filesystems[0].mounter: must be one of auto, loop, fuse2fs, got "Loop"',
  ])
})

test('cache settings must be whole numbers within their ranges', (t) => {
  const [fs] = validateConfig(cfg(rawFs({ cache: { block_size_kib: 4, memory_mib: 65536, readahead_blocks: 0 } }))).azure_filesystems
  t.deepEqual(fs!.cache, { block_size_kib: 4, memory_mib: 65536, readahead_blocks: 0 })
  const err = invalid(cfg(rawFs({ cache: { block_size_kib: 3, memory_mib: 1.5, readahead_blocks: '8' } })))
  t.deepEqual(lines(err), [
    'azure_filesystems[0].cache.block_size_kib: must be a whole number from 4 to 65536, got 3',
    'azure_filesystems[0].cache.memory_mib: must be a whole number from 1 to 65536, got 1.5',
    'azure_filesystems[0].cache.readahead_blocks: must be a whole number from 0 to 1024, got "8"',
  ])
  t.is(oneIssue(cfg(rawFs({ cache: { readahead_blocks: 1025 } }))).path, 'azure_filesystems[0].cache.readahead_blocks')
})

// --- several problems at once ---------------------------------------------------------------------------

test('every problem of every filesystem is reported at once, in order, with a count', (t) => {
  const err = invalid(
    {
      azure_info: { identity: 'cid' },
      azure_filesystems: [
        rawFs({ mount_point: '/mnt/a', azure_url: 'ftp://h/b' }),
        rawFs({ mount_point: 'relative', raw_key: 'xyz' }),
        releaseFs({ mount_point: '/mnt/a', key: { kid: 'k' } }),
        7,
      ],
    },
    'EncfsSideCarArgs',
  )
  t.is(err.code, 'CONFIG_INVALID')
  t.deepEqual(
    err.issues.map((i) => i.path),
    [
      'azure_info.identity',
      'azure_filesystems[0].azure_url',
      'azure_filesystems[1].mount_point',
      'azure_filesystems[1].raw_key',
      'azure_filesystems[2].key.authority.endpoint',
      'azure_filesystems[2].key.akv.endpoint',
      'azure_filesystems[2].mount_point',
      'azure_filesystems[3]',
    ],
  )
  t.regex(err.message, /^invalid EncfsSideCarArgs \(8 problems\):\n/)
  for (const line of lines(err)) t.true(err.message.includes(`\n  ${line}`), line)
})

test('members after an invalid mount_point are still checked', (t) => {
  const err = invalid(cfg(rawFs({ mount_point: 'relative', read_write: 'yes', unlock: 'fast', cache: { memory_mib: 0 } })))
  t.deepEqual(
    err.issues.map((i) => i.path),
    ['azure_filesystems[0].mount_point', 'azure_filesystems[0].read_write', 'azure_filesystems[0].unlock', 'azure_filesystems[0].cache.memory_mib'],
  )
})

test('a duplicate mount point is reported even when that filesystem has another problem', (t) => {
  const err = invalid(cfg(rawFs({ mount_point: '/mnt/a' }), rawFs({ mount_point: '/mnt/a', azure_url: 'ftp://h/b' })))
  t.deepEqual(err.issues.map((i) => i.path).sort(), ['azure_filesystems[1].azure_url', 'azure_filesystems[1].mount_point'])
})

test('the validated configuration holds only known members, with defaults applied', (t) => {
  const config = validateConfig(cfg(rawFs()))
  t.deepEqual(config, {
    azure_filesystems: [
      {
        mount_point: '/mnt/remote/share',
        azure_url: BLOB_URL,
        azure_url_private: false,
        read_write: false,
        key: undefined,
        key_derivation: undefined,
        raw_key: '00112233445566778899aabbccddeeff',
        unlock: undefined,
        mounter: undefined,
        cache: undefined,
      },
    ],
  })
})
