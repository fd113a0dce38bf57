// The base64 variants encfs reads, each accepting exactly what its name says.
import test from 'ava'
import { decodeGoStdBase64, decodeStdBase64, decodeStdOrUrlBase64, GO_STD_BASE64_PATTERN } from '../../src/encoding/base64.js'

const bytes = Buffer.from([0xfb, 0xff, 0xbf, 0x01, 0x02])
const std = bytes.toString('base64') // +/+/AQI=
const url = bytes.toString('base64url') // -_-_AQI

test('strict standard: the standard alphabet with padding, nothing else', (t) => {
  t.deepEqual(decodeStdBase64(std), bytes)
  t.deepEqual(decodeStdBase64(''), Buffer.alloc(0))
  for (const bad of [url, std.replace(/=+$/, ''), `${std.slice(0, 4)}\n${std.slice(4)}`, ` ${std}`, 'AB=C', 'A===']) t.is(decodeStdBase64(bad), undefined, JSON.stringify(bad))
})

test("Go's StdEncoding: strict standard with CR and LF skipped", (t) => {
  t.deepEqual(decodeGoStdBase64(`${std.slice(0, 4)}\r\n${std.slice(4)}\n`), bytes)
  for (const bad of [url, std.replace(/=+$/, ''), ` ${std}`, `${std}\t`]) t.is(decodeGoStdBase64(bad), undefined, JSON.stringify(bad))
  const pattern = new RegExp(GO_STD_BASE64_PATTERN)
  t.true(pattern.test(`${std.slice(0, 4)}\r\n${std.slice(4)}`))
  t.false(pattern.test(url))
})

test('EncfsSideCarArgs: standard or URL-safe alphabet, not mixed, padding optional', (t) => {
  t.deepEqual(decodeStdOrUrlBase64(std), bytes)
  t.deepEqual(decodeStdOrUrlBase64(url), bytes)
  t.deepEqual(decodeStdOrUrlBase64(std.replace(/=+$/, '')), bytes)
  t.deepEqual(decodeStdOrUrlBase64(`${url.slice(0, 4)}\n${url.slice(4)}`), bytes)
  for (const bad of ['+/-_AQI=', 'A', 'AAAAA', 'a b', '']) t.is(decodeStdOrUrlBase64(bad), undefined, JSON.stringify(bad))
})
