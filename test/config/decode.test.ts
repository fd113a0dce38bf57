import test from 'ava'
import { inspect } from 'node:util'
import { decodeSidecarArgs } from '../../src/config/decode.js'
import { ConfigError } from '../../src/config/errors.js'
import { EncfsError } from '../../src/errors/encfs-error.js'
import { b64, b64url, sampleJson, sampleText } from './fixtures.js'

const SAMPLE = 'remotefs-readme-sample.json'

function decodeError(input: string, source = 'EncfsSideCarArgs'): ConfigError {
  let caught: unknown
  try {
    decodeSidecarArgs(input, source)
  } catch (err) {
    caught = err
  }
  if (!(caught instanceof ConfigError)) throw new Error(`expected a ConfigError for ${JSON.stringify(input)}, got ${String(caught)}`)
  return caught
}

test('standard base64 of the remotefs README sample decodes to the same JSON value', (t) => {
  t.deepEqual(decodeSidecarArgs(b64(sampleText(SAMPLE)), '-base64'), sampleJson(SAMPLE))
})

test('base64 wrapped at 76 columns (base64 without -w0), with LF or CRLF and a trailing newline, is accepted', (t) => {
  const oneLine = b64(sampleText(SAMPLE))
  const lines = oneLine.match(/.{1,76}/g) ?? []
  t.true(lines.length > 2)
  t.deepEqual(decodeSidecarArgs(`${lines.join('\n')}\n`, 'EncfsSideCarArgs'), sampleJson(SAMPLE))
  t.deepEqual(decodeSidecarArgs(`${lines.join('\r\n')}\r\n`, 'EncfsSideCarArgs'), sampleJson(SAMPLE))
})

test("URL-safe base64 (as the Go repo's Python tests produce) is accepted, with and without padding", (t) => {
  // "~~~" and "???" encode to "+" and "/" in the standard alphabet, so the URL-safe form really differs.
  const text = JSON.stringify({ note: '~~~???>>>', azure_filesystems: [] })
  const unpadded = b64url(text)
  t.regex(unpadded, /[-_]/, 'the URL-safe form uses - or _')
  t.notRegex(unpadded, /[+/=]/)
  t.deepEqual(decodeSidecarArgs(unpadded, 'EncfsSideCarArgs'), JSON.parse(text))
  const padded = unpadded + '='.repeat((4 - (unpadded.length % 4)) % 4)
  t.deepEqual(decodeSidecarArgs(padded, 'EncfsSideCarArgs'), JSON.parse(text))
})

test('standard base64 without its padding is accepted too', (t) => {
  const text = JSON.stringify({ a: 1 })
  const std = b64(text)
  t.true(std.endsWith('='), 'the sample needs padding')
  t.deepEqual(decodeSidecarArgs(std.replace(/=+$/, ''), '-base64'), { a: 1 })
})

test('mixing the standard and URL-safe alphabets is rejected with CONFIG_BASE64', (t) => {
  const std = b64(JSON.stringify({ note: '~~~???>>>~~~' }))
  t.regex(std, /[+/]/)
  // Turn only the first "+" or "/" into its URL-safe twin.
  const mixed = std.replace(/[+/]/, (c) => (c === '+' ? '-' : '_'))
  t.regex(mixed, /[+/]/)
  t.regex(mixed, /[-_]/)
  const err = decodeError(mixed)
  t.is(err.code, 'CONFIG_BASE64')
})

test('text that is not base64 gives CONFIG_BASE64 naming the source, without echoing the input', (t) => {
  const input = '{"raw_key":"c0ffeec0ffeec0ffee"}'
  const err = decodeError(input, '-base64')
  t.is(err.code, 'CONFIG_BASE64')
  t.true(err instanceof EncfsError)
  t.regex(err.message, /^-base64 is not base64/)
  t.regex(err.message, /base64 -w0 config\.json/)
  t.false(err.message.includes('c0ffee'), 'the input is not echoed')
})

test('base64 with characters outside both alphabets, inner spaces, or misplaced padding is rejected', (t) => {
  const good = b64(JSON.stringify({ azure_filesystems: [] }))
  for (const bad of [`${good.slice(0, 8)} ${good.slice(8)}`, `${good}*`, `AB==CD==`, `${good}===`, 'é'.repeat(8)]) {
    t.is(decodeError(bad).code, 'CONFIG_BASE64', bad)
  }
})

test('a base64 length that no encoder produces (4n+1 characters) is rejected', (t) => {
  const err = decodeError('QUJDRUZHS')
  t.is(err.code, 'CONFIG_BASE64')
  t.is(decodeError('QUJDR').code, 'CONFIG_BASE64')
})

test('an empty or blank value is CONFIG_BASE64 "is empty"', (t) => {
  for (const blank of ['', '   ', '\n', '\r\n']) {
    const err = decodeError(blank, 'EncfsSideCarArgs')
    t.is(err.code, 'CONFIG_BASE64')
    t.regex(err.message, /^EncfsSideCarArgs is empty/)
  }
})

test('valid base64 of something that is not JSON gives CONFIG_JSON naming the source', (t) => {
  const err = decodeError(b64('mount_point=/mnt/x'), 'EncfsSideCarArgs')
  t.is(err.code, 'CONFIG_JSON')
  t.regex(err.message, /^EncfsSideCarArgs decodes from base64 but is not valid JSON/)
  t.regex(err.message, /: Unexpected token 'm'$/, "the parser's reason is kept, its quote of the input is not")
})

test('truncated JSON (for example a cut-off copy and paste) gives CONFIG_JSON', (t) => {
  const text = sampleText(SAMPLE)
  const err = decodeError(b64(text.slice(0, Math.floor(text.length / 2))), '-base64')
  t.is(err.code, 'CONFIG_JSON')
})

test('CONFIG_JSON messages never quote secrets from the broken JSON', (t) => {
  const secret = 'S3cr3tS3cr3tS3cr3t'
  const broken = [
    `{"azure_filesystems":[{"raw_key":"${secret}", }]}`,
    `{"azure_filesystems":[{"key":{"akv":{"bearer_token": ${secret}}}}]}`,
    `{"azure_filesystems":[{"azure_url":"https://a.blob.core.windows.net/c/b?sv=1&sig=${secret}" "x":1}]}`,
    `{"azure_filesystems":[{"azure_url":"https://a.blob.core.windows.net/c/b?sig=${secret}`,
    `{"azure_filesystems":[{"raw_key":"${secret}"}]}}`,
    `raw_key=${secret}`,
    `{"azure_filesystems":[{"raw_key":"${secret}",'x':1}]}`,
  ]
  for (const text of broken) {
    const err = decodeError(b64(text), '-base64')
    t.is(err.code, 'CONFIG_JSON', text)
    t.false(err.message.includes(secret), `secret leaked in: ${err.message}`)
    t.false(err.message.includes(secret.slice(0, 8)), `part of the secret leaked in: ${err.message}`)
    t.false(inspect(err, { depth: 5 }).includes(secret.slice(0, 8)), 'nor in the error as printed with its cause')
  }
})

test('JSON that is not an object still decodes (validation reports it)', (t) => {
  t.deepEqual(decodeSidecarArgs(b64('[1,2]'), '-base64'), [1, 2])
  t.is(decodeSidecarArgs(b64('null'), '-base64'), null)
})
