import test from 'ava'
import { openSource } from '../../src/storage/open-source.js'
import { StorageError } from '../../src/storage/errors.js'
import { redactUrl } from '../../src/log/redact.js'

test('openSource refuses locations that are neither a blob URL nor a local image, without echoing a SAS', async (t) => {
  for (const location of ['ftp://example.com/image.img?sv=2024&sig=SECRETSIG', 'relative/image.img', 'c:\\image.img', '']) {
    const err = await t.throwsAsync(openSource(location), { instanceOf: StorageError }, location)
    t.is(err?.code, 'STORAGE_BAD_URL', location)
    t.false(String(err?.message).includes('SECRETSIG'), String(err?.message))
    t.false(String(err?.message).includes('sig='), String(err?.message))
    t.regex(String(err?.message), /https:\/\/.*file:\/\/.*absolute path/)
  }
})

test('redactUrl removes the SAS query and keeps the blob address', (t) => {
  const url = 'https://acct.blob.core.windows.net/container/dir/encfs.img?sv=2024-08-04&se=2030-01-01&sr=b&sp=r&sig=abc%2Bdef%3D'
  const redacted = redactUrl(url)
  t.true(redacted.startsWith('https://acct.blob.core.windows.net/container/dir/encfs.img'))
  t.false(redacted.includes('sig='))
  t.false(redacted.includes('abc%2Bdef'))
  t.false(redacted.includes('sv=2024'))
  t.is(redactUrl('https://acct.blob.core.windows.net/c/b.img'), 'https://acct.blob.core.windows.net/c/b.img')
  t.is(redactUrl('/var/images/b.img'), '/var/images/b.img')
})
