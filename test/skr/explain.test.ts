// `encfs release --explain`'s engine against the emulators: the same attestation as a release, the
// key's release policy read back from the vault, and the vault's own decision agreeing with it.
import test from 'ava'
import { randomBytes } from 'node:crypto'
import { startSkrStack, type SkrStack } from '../helpers/skr-stack.js'
import { explainRelease } from '../../src/skr/explain.js'
import { releaseKey } from '../../src/skr/release.js'

let s: SkrStack
let bearer: string

test.before(async () => {
  s = await startSkrStack()
  bearer = (await s.authority.issue(s.akv.audience, 'operator')).token
  await s.importKey('ours', randomBytes(32))
  await s.importKey('previous-pod', randomBytes(32), [[{ claim: 'x-ms-sevsnpvm-hostdata', equals: '9a'.repeat(32) }]])
  await s.importKey('newer-firmware', randomBytes(32), [[{ claim: 'x-ms-sevsnpvm-snpfw-svn', equals: '8' }]])
})
test.after.always(async () => {
  await s?.stop()
})

const opts = (kid: string) => s.releaseOptions(kid, bearer)

test('a key bound to another pod: the failing clause with both digests, and the vault refuses the release alike', async (t) => {
  const { evaluation, lines, claims } = await explainRelease(opts('previous-pod'))
  t.false(evaluation.ok)
  const text = lines.join('\n')
  t.regex(text, new RegExp(`\\[FAIL\\] anyOf\\[0\\]\\.allOf\\[0\\]: x-ms-sevsnpvm-hostdata equals "${'9a'.repeat(32)}": the token has "${s.hostData.toString('hex')}"`))
  t.regex(text, /verdict: REFUSED/)
  t.is(claims['x-ms-sevsnpvm-hostdata'], s.hostData.toString('hex'))
  const refused = await t.throwsAsync(releaseKey(opts('previous-pod')))
  t.regex(refused!.message, /HTTP 403 .*x-ms-sevsnpvm-hostdata/)
})

test('a key the pod may have: ALLOWED, and the release succeeds', async (t) => {
  const { evaluation, lines } = await explainRelease(opts('ours'))
  t.true(evaluation.ok, lines.join('\n'))
  t.regex(lines.join('\n'), /\[ ok \] anyOf\[0\]\.allOf\[0\]: x-ms-sevsnpvm-hostdata equals/)
  t.is((await releaseKey(opts('ours'))).material.length, 32)
})

test('a numeric claim compared as text, as the vault compares it (equals "8" holds for 8)', async (t) => {
  const { evaluation, lines } = await explainRelease(opts('newer-firmware'))
  t.true(evaluation.ok, lines.join('\n'))
  t.is((await releaseKey(opts('newer-firmware'))).material.length, 32, 'the vault agrees')
})

test('a key that does not exist: the read fails naming kid and endpoint', async (t) => {
  const err = await t.throwsAsync(explainRelease(opts('no-such-key')))
  t.is((err as { code?: string }).code, 'SKR_KEY_READ_FAILED')
  t.regex(err!.message, /reading key no-such-key from 127\.0\.0\.1:\d+ failed with HTTP 404 KeyNotFound.*check key\.kid/)
})
