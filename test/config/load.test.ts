import test from 'ava'
import { configSecrets, loadConfig, redactConfig } from '../../src/config/load.js'
import { planFilesystems } from '../../src/config/plan.js'
import { validateConfig } from '../../src/config/validate.js'
import { BLOB_URL, asConfigError, b64, b64json, b64url, rawFs, releaseFs, sampleJson, sampleText } from './fixtures.js'

const README_SAMPLE = 'remotefs-readme-sample.json'

function loadError(o: Parameters<typeof loadConfig>[0]) {
  let caught: unknown
  try {
    loadConfig(o)
  } catch (err) {
    caught = err
  }
  return asConfigError(caught)
}

test('-base64 with the README sample, encoded as a user would, loads with its values', (t) => {
  const { config, source } = loadConfig({ base64: b64(sampleText(README_SAMPLE)), env: {} })
  t.is(source, '-base64')
  t.deepEqual(
    config.azure_filesystems.map((f) => f.mount_point),
    ['/remotemounts/share1', '/remotemounts/share2'],
  )
  t.deepEqual(
    config.azure_filesystems.map((f) => f.key?.akv?.endpoint),
    ['avaultname.vault.azure.net', 'amanagedhsmname.managedhsm.azure.net'],
  )
  t.deepEqual(config, validateConfig(sampleJson(README_SAMPLE)))
})

test('EncfsSideCarArgs is used when there is no -base64', (t) => {
  const { config, source } = loadConfig({ env: { EncfsSideCarArgs: b64(sampleText(README_SAMPLE)) } })
  t.is(source, 'EncfsSideCarArgs')
  t.is(config.azure_filesystems.length, 2)
})

test('an empty -base64 falls back to EncfsSideCarArgs', (t) => {
  const { source, config } = loadConfig({ base64: '', env: { EncfsSideCarArgs: b64json({ azure_filesystems: [rawFs({ mount_point: '/from/env' })] }) } })
  t.is(source, 'EncfsSideCarArgs')
  t.is(config.azure_filesystems[0]!.mount_point, '/from/env')
})

test('-base64 wins over EncfsSideCarArgs, even when the environment one is broken', (t) => {
  const env = { EncfsSideCarArgs: '!!! not base64 !!!' }
  const { config, source } = loadConfig({ base64: b64json({ azure_filesystems: [rawFs({ mount_point: '/from/flag' })] }), env })
  t.is(source, '-base64')
  t.is(config.azure_filesystems[0]!.mount_point, '/from/flag')
})

test.serial('without an env argument, process.env.EncfsSideCarArgs is read', (t) => {
  const saved = process.env.EncfsSideCarArgs
  process.env.EncfsSideCarArgs = b64json({ azure_filesystems: [rawFs({ mount_point: '/from/process' })] })
  try {
    const { config, source } = loadConfig({})
    t.is(source, 'EncfsSideCarArgs')
    t.is(config.azure_filesystems[0]!.mount_point, '/from/process')
  } finally {
    if (saved === undefined) delete process.env.EncfsSideCarArgs
    else process.env.EncfsSideCarArgs = saved
  }
})

test('no configuration at all is CONFIG_MISSING and says how to give one', (t) => {
  for (const o of [{ env: {} }, { base64: '', env: { EncfsSideCarArgs: '' } }, { env: { EncfsSideCarArgs: '  \n' } }]) {
    const err = loadError(o)
    t.is(err.code, 'CONFIG_MISSING')
    t.true(err.message.includes('-base64'))
    t.true(err.message.includes('EncfsSideCarArgs'))
  }
})

test('bad base64 is CONFIG_BASE64 and names where it came from', (t) => {
  const fromFlag = loadError({ base64: 'this is not base64', env: {} })
  t.is(fromFlag.code, 'CONFIG_BASE64')
  t.regex(fromFlag.message, /^-base64 is not base64/)
  const fromEnv = loadError({ env: { EncfsSideCarArgs: 'this is not base64' } })
  t.is(fromEnv.code, 'CONFIG_BASE64')
  t.regex(fromEnv.message, /^EncfsSideCarArgs is not base64/)
})

test('the plain JSON given instead of its base64 is CONFIG_BASE64, not echoed', (t) => {
  const err = loadError({ env: { EncfsSideCarArgs: JSON.stringify({ azure_filesystems: [rawFs({ raw_key: 'feedfacefeedface' })] }) } })
  t.is(err.code, 'CONFIG_BASE64')
  t.false(err.message.includes('feedface'))
})

test('bad JSON is CONFIG_JSON and names where it came from', (t) => {
  const err = loadError({ env: { EncfsSideCarArgs: b64('{"azure_filesystems": [') } })
  t.is(err.code, 'CONFIG_JSON')
  t.regex(err.message, /^EncfsSideCarArgs decodes from base64 but is not valid JSON/)
})

test('validation problems are CONFIG_INVALID, naming the source and each JSON path', (t) => {
  const err = loadError({ base64: b64json({ azure_filesystems: [rawFs(), rawFs({ mount_point: 'mnt/x', azure_url: 'ftp://h/b' })] }), env: {} })
  t.is(err.code, 'CONFIG_INVALID')
  t.is(
    err.message,
    'invalid -base64 (2 problems):\n' +
      '  azure_filesystems[1].mount_point: must be an absolute path, got "mnt/x"\n' +
      '  azure_filesystems[1].azure_url: unsupported scheme "ftp:": use https://, file:// or an absolute path',
  )
  t.deepEqual(err.issues, [
    { path: 'azure_filesystems[1].mount_point', message: 'must be an absolute path, got "mnt/x"' },
    { path: 'azure_filesystems[1].azure_url', message: 'unsupported scheme "ftp:": use https://, file:// or an absolute path' },
  ])
})

test('URL-safe base64 (with - and _) in EncfsSideCarArgs loads', (t) => {
  const text = JSON.stringify({ azure_filesystems: [rawFs({ azure_url: `${BLOB_URL}?sv=2022-11-02&sig=a~~~b???c>>>` })] })
  const encoded = b64url(text)
  t.regex(encoded, /[-_]/)
  const { config } = loadConfig({ env: { EncfsSideCarArgs: encoded } })
  t.is(config.azure_filesystems[0]!.azure_url, `${BLOB_URL}?sv=2022-11-02&sig=a~~~b???c>>>`)
})

test('base64 wrapped over several lines (base64 without -w0) loads', (t) => {
  const wrapped = (b64(sampleText(README_SAMPLE)).match(/.{1,76}/g) ?? []).join('\n')
  t.true(wrapped.includes('\n'))
  t.is(loadConfig({ base64: wrapped, env: {} }).config.azure_filesystems.length, 2)
})

test('the skr sidecar arguments given to remotefs by mistake are rejected: azure_filesystems is required', (t) => {
  const err = loadError({ env: { EncfsSideCarArgs: b64(sampleText('skr-sidecar-args.kata-sample.json')) } })
  t.is(err.code, 'CONFIG_INVALID')
  t.deepEqual(
    err.issues.map((i) => i.path),
    ['azure_filesystems'],
  )
})

test('the unfilled template is rejected through the whole path with its placeholders named', (t) => {
  const err = loadError({ env: { EncfsSideCarArgs: b64(sampleText('encfs-sidecar-args.template.json')) } })
  t.is(err.code, 'CONFIG_INVALID')
  t.regex(err.message, /^invalid EncfsSideCarArgs \(3 problems\)/, 'the placeholder salt is a warning, as Go reads it only for RSA keys')
  t.true(err.issues.some((i) => i.path === 'azure_filesystems[0].azure_url'))
})

test('case-insensitive member names survive the base64 round trip', (t) => {
  const { config } = loadConfig({ base64: b64('{"AZURE_FILESYSTEMS":[{"Mount_Point":"/mnt/x","Azure_Url":"file:///img","Raw_Key":"abcd"}]}'), env: {} })
  t.is(config.azure_filesystems[0]!.mount_point, '/mnt/x')
  t.is(config.azure_filesystems[0]!.azure_url, 'file:///img')
  t.is(config.azure_filesystems[0]!.raw_key, 'abcd')
})

test('loaded raw-key configurations still need the opt-in when planned', (t) => {
  const { config } = loadConfig({ base64: b64json({ azure_filesystems: [rawFs()] }), env: {} })
  t.is(asConfigErrorOf(() => planFilesystems(config, { allowRawKey: false })).code, 'CONFIG_INVALID')
  t.is(planFilesystems(config, { allowRawKey: true })[0]!.key.kind, 'raw')
})

function asConfigErrorOf(fn: () => unknown) {
  let caught: unknown
  try {
    fn()
  } catch (err) {
    caught = err
  }
  return asConfigError(caught)
}

// --- secrets --------------------------------------------------------------------------------------

const SECRET_RAW = '5ec7e75ec7e75ec7e75ec7e75ec7e75e'
const SECRET_TOKEN = 'eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.c2VjcmV0.sig'
const SECRET_SIG = 'sig=dGhpc2lzYXNhc3NpZ25hdHVyZQ%3D%3D'

test('redactConfig hides raw_key, bearer_token and SAS queries, and keeps everything else', (t) => {
  const config = validateConfig({
    azure_info: { identity: { client_id: 'cid' } },
    azure_filesystems: [
      rawFs({ mount_point: '/m/a', raw_key: SECRET_RAW, azure_url: `${BLOB_URL}?sv=2022-11-02&sp=r&${SECRET_SIG}` }),
      releaseFs({
        mount_point: '/m/b',
        key: { kid: 'k', kty: 'oct-HSM', authority: { endpoint: 'm.example.net' }, akv: { endpoint: 'v.vault.azure.net', bearer_token: SECRET_TOKEN } },
      }),
    ],
  })
  const before = JSON.stringify(config)
  const redacted = redactConfig(config)
  const text = JSON.stringify(redacted)
  for (const secret of [SECRET_RAW, SECRET_TOKEN, SECRET_SIG, 'dGhpc2lz', 'sv=2022-11-02']) t.false(text.includes(secret), secret)
  const [a, b] = redacted.azure_filesystems
  t.is(a!.raw_key, '[redacted]')
  t.is(a!.azure_url, `${BLOB_URL}?[sas redacted]`)
  t.is(a!.mount_point, '/m/a')
  t.is(b!.key?.akv?.bearer_token, '[redacted]')
  t.is(b!.key?.akv?.endpoint, 'v.vault.azure.net')
  t.is(b!.key?.kid, 'k')
  t.is(b!.key?.kty, 'oct-HSM')
  t.is(b!.azure_url, BLOB_URL)
  t.is(redacted.azure_info?.identity?.client_id, 'cid')
  t.is(JSON.stringify(config), before, 'the configuration itself is not modified')
  t.is(config.azure_filesystems[0]!.raw_key, SECRET_RAW)
})

test('redactConfig leaves a configuration without secrets as it is', (t) => {
  const config = validateConfig(sampleJson(README_SAMPLE))
  t.deepEqual(redactConfig(config), config)
})

test('redactConfig output of a loaded configuration can be logged: no secret survives anywhere', (t) => {
  const json = JSON.stringify({
    azure_filesystems: [
      rawFs({ mount_point: '/m/a', raw_key: SECRET_RAW, azure_url: `http://127.0.0.1:10000/devstoreaccount1/c/i.img?${SECRET_SIG}` }),
      releaseFs({
        mount_point: '/m/b',
        raw_key: SECRET_RAW.toUpperCase(),
        key: { kid: 'k', authority: { endpoint: 'm.example.net' }, akv: { endpoint: 'v.vault.azure.net', bearer_token: SECRET_TOKEN } },
      }),
    ],
  })
  const { config } = loadConfig({ base64: b64(json), env: {} })
  const text = JSON.stringify(redactConfig(config)).toLowerCase()
  for (const secret of [SECRET_RAW, SECRET_TOKEN.toLowerCase(), 'dghpc2l']) t.false(text.includes(secret), secret)
})

test('error messages of an invalid configuration never contain its secrets', (t) => {
  const json = JSON.stringify({
    azure_filesystems: [
      rawFs({ mount_point: 'relative', raw_key: `${SECRET_RAW}0`, azure_url: `ftp://h/b?${SECRET_SIG}` }),
      releaseFs({
        mount_point: '/m/b',
        azure_url: `http://acct.blob.core.windows.net/c/b?${SECRET_SIG}`,
        key: { kid: 'k', authority: { endpoint: 'bad/host' }, akv: { endpoint: 'v.vault.azure.net', bearer_token: SECRET_TOKEN } },
      }),
      releaseFs({ mount_point: '/m/c', azure_url: `not a url ?${SECRET_SIG}`, raw_key: `zz${SECRET_RAW}` }),
    ],
  })
  for (const o of [{ base64: b64(json), env: {} }, { env: { EncfsSideCarArgs: b64url(json) } }]) {
    const err = loadError(o)
    t.is(err.code, 'CONFIG_INVALID')
    t.true(err.issues.length >= 6, err.message)
    const text = `${err.message}\n${JSON.stringify(err.issues)}`
    for (const secret of [SECRET_RAW, SECRET_TOKEN, 'dGhpc2lz', SECRET_RAW.slice(0, 10)]) t.false(text.includes(secret), `${secret} in ${err.message}`)
  }
})

test('configSecrets names what a configuration carries that must not sit on a command line', (t) => {
  const config = validateConfig({
    azure_filesystems: [
      rawFs({ mount_point: '/m/a', raw_key: SECRET_RAW, azure_url: `${BLOB_URL}?sv=2022-11-02&sp=r&${SECRET_SIG}` }),
      releaseFs({
        mount_point: '/m/b',
        azure_url: 'https://u:p@acct.blob.core.windows.net/c/b.img',
        key: { kid: 'k', kty: 'oct-HSM', authority: { endpoint: 'm.example.net' }, akv: { endpoint: 'v.vault.azure.net', bearer_token: SECRET_TOKEN } },
      }),
      releaseFs({ mount_point: '/m/c' }),
    ],
  })
  t.deepEqual(configSecrets(config), [
    'azure_filesystems[0].raw_key',
    'a SAS signature in azure_filesystems[0].azure_url',
    'a user:password in azure_filesystems[1].azure_url',
    'azure_filesystems[1].key.akv.bearer_token',
  ])
  t.deepEqual(configSecrets(validateConfig({ azure_filesystems: [releaseFs({ mount_point: '/m/c' })] })), [])
})
