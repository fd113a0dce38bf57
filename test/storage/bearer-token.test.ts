import test from 'ava'
import type { AccessToken, TokenCredential } from '@azure/identity'
import { BearerToken, STORAGE_SCOPE } from '../../src/storage/bearer-token.js'

function credential(lifetimeMs: number) {
  const asked: string[] = []
  let n = 0
  const c: TokenCredential = {
    getToken: async (scope): Promise<AccessToken> => {
      asked.push(String(scope))
      await new Promise((resolve) => setTimeout(resolve, 20))
      return { token: `t${++n}`, expiresOnTimestamp: Date.now() + lifetimeMs }
    },
  }
  return { c, asked }
}

test('one token for blob storage serves every request until near its expiry; concurrent callers share one request', async (t) => {
  const { c, asked } = credential(3600_000)
  const token = new BearerToken(c)
  const headers = await Promise.all(Array.from({ length: 5 }, () => token.header()))
  t.deepEqual(new Set(headers), new Set(['Authorization: Bearer t1']))
  t.is(await token.header(), 'Authorization: Bearer t1')
  t.deepEqual(asked, [STORAGE_SCOPE])
})

test('a token within two minutes of its expiry is asked for again', async (t) => {
  const { c, asked } = credential(60_000)
  const token = new BearerToken(c)
  t.is(await token.header(), 'Authorization: Bearer t1')
  // Still valid for a minute: served while the refresh runs, then the new one.
  t.is(await token.header(), 'Authorization: Bearer t1')
  await new Promise((resolve) => setTimeout(resolve, 50))
  t.is(await token.header(), 'Authorization: Bearer t2')
  t.true(asked.length >= 2)
})

test('a failing credential fails the request that needs a token, with its error', async (t) => {
  const token = new BearerToken({
    getToken: async () => {
      throw new Error('no identity here')
    },
  })
  await t.throwsAsync(token.header(), { message: 'no identity here' })
})

test('a token is never sent over plain HTTP: headerFor refuses an http:// URL without asking for a token', async (t) => {
  const { c, asked } = credential(3600_000)
  const token = new BearerToken(c)
  await t.throwsAsync(token.headerFor('http://127.0.0.1:10000/devstoreaccount1/c/b'), { message: /not permitted for non-TLS/ })
  t.deepEqual(asked, [])
  t.is(await token.headerFor('https://acct.blob.core.windows.net/c/b'), 'Authorization: Bearer t1')
})
