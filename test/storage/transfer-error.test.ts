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
