import test from 'ava'
import { outcomeError } from '../../src/storage/transfer-error.js'
import { storageError } from '../../src/storage/storage-error.js'

test('a failed exchange is a RestError the storage errors and retries read: status, x-ms-error-code, Retry-After; no SAS', (t) => {
  const url = 'https://acct.blob.core.windows.net/c/b?sv=1&sig=SECRET'
  const err = outcomeError(
    { curlCode: 0, status: 429, bytes: 0, headers: 'HTTP/1.1 429 Too Many Requests\r\nx-ms-error-code: TooManyRequests\r\nRetry-After: 3\r\n\r\n' },
    'GET',
    url,
  )
  t.is(err.statusCode, 429)
  t.is(err.code, 'TooManyRequests')
  t.is(err.response?.headers.get('retry-after'), '3')
  t.false(JSON.stringify(err.request).includes('SECRET'))
  const transport = outcomeError({ curlCode: 7, status: 0, bytes: 0, message: 'Failed to connect to acct port 443' }, 'GET', url)
  t.is(transport.statusCode, undefined)
  t.is(storageError(transport, { url }, 'reading').code, 'STORAGE_UNREACHABLE')
})

test('an answer that makes no sense is said so, not "cannot reach": more bytes than asked for, a body cut short', (t) => {
  const url = 'https://acct.blob.core.windows.net/c/b?sv=1&sig=SECRET'
  for (const reason of ['the server sent more than the 4096 bytes asked for', 'the download ended after 100 of 4096 bytes']) {
    const err = storageError(new Error(reason), { url }, 'reading 4096 bytes at 0')
    t.is(err.code, 'STORAGE_BAD_ANSWER', reason)
    t.is(err.message, `reading 4096 bytes at 0: https://acct.blob.core.windows.net/c/b?[sas redacted] answered wrongly: ${reason}`)
  }
  const reset = Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' })
  t.is(storageError(reset, { url }, 'reading').code, 'STORAGE_UNREACHABLE', 'a transport failure is still one')
})
