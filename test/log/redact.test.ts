import test from 'ava'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { redactSecrets, redactUrl, urlCredentials } from '../../src/log/redact.js'
import { createLogger } from '../../src/log/logger.js'
import { StorageError } from '../../src/storage/errors.js'
import { failureMessage } from '../../src/cli/fail.js'

const URL_WITH_ALL = 'https://alice:s3cr3t-pw@acct.blob.core.windows.net/c/encfs.img?sv=2022-11-02&sp=r&sig=AbC%2Bdef%3D'

test('redactUrl removes user:password and the SAS query', (t) => {
  t.is(redactUrl(URL_WITH_ALL), 'https://[redacted]@acct.blob.core.windows.net/c/encfs.img?[sas redacted]')
  t.is(redactUrl('http://127.0.0.1:10000/devstoreaccount1/c/x.img'), 'http://127.0.0.1:10000/devstoreaccount1/c/x.img')
  t.is(redactUrl('https://user@host/x'), 'https://[redacted]@host/x')
})

test('redactSecrets finds credentials anywhere in text, and leaves the rest alone', (t) => {
  const text = `GET ${URL_WITH_ALL} failed; retry via ftp://bob:pw@h/x; Authorization: Bearer eyJhbGciOi.abc.def; mail root@localhost`
  const out = redactSecrets(text)
  for (const secret of ['s3cr3t-pw', 'alice', 'AbC%2Bdef', 'bob:pw', 'eyJhbGciOi']) t.false(out.includes(secret), secret)
  t.true(out.includes('sp=r'), 'the rest of the SAS query stays')
  t.true(out.includes('root@localhost'), 'an address without a scheme is not a URL credential')
})

test('every log line is redacted: message, fields, error messages and stacks', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'encfs-redact-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const file = path.join(dir, 'log.jsonl')
  const logger = createLogger({ level: 'debug', file })
  const err = new StorageError('STORAGE_READ_FAILED', `cannot read ${URL_WITH_ALL}`)
  logger.warn({ url: URL_WITH_ALL, nested: { proxy: 'http://p:pw@proxy:3128' } }, `opening ${URL_WITH_ALL}`)
  logger.error({ err }, 'failed')
  logger.child({ component: 'api' }).info(`child ${URL_WITH_ALL}`)
  const text = await readFile(file, 'utf8')
  t.is(text.trim().split('\n').length, 3)
  for (const secret of ['s3cr3t-pw', 'AbC%2Bdef', 'p:pw@']) t.false(text.includes(secret), `${secret} in ${text}`)
  t.regex(text, /\[redacted\]@acct\.blob\.core\.windows\.net/)
})

test('error messages printed by the CLIs are redacted too', (t) => {
  const msg = failureMessage(new StorageError('STORAGE_NOT_FOUND', `blob ${URL_WITH_ALL} not found`))
  t.false(msg.includes('s3cr3t-pw'))
  t.false(msg.includes('AbC%2Bdef'))
})

test('urlCredentials names what a URL carries', (t) => {
  t.deepEqual(urlCredentials('https://a.blob.core.windows.net/c/b?sv=1&sig=abc'), ['a SAS signature'])
  t.deepEqual(urlCredentials('https://user:pw@host/c/b?sig=x'), ['a SAS signature', 'a user:password'])
  t.deepEqual(urlCredentials('https://a.blob.core.windows.net/c/b?sv=1&signature=abc'), [])
  t.deepEqual(urlCredentials(''), [])
})
