// Key unwrap, key derivation and the wrapping-key JWK set, against the Go project's vectors and
// against blobs made by the OpenSSL command line (an implementation independent of ours).
import test from 'ava'
import { readFileSync } from 'node:fs'
import { mkdtemp, rm, writeFile, readFile } from 'node:fs/promises'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { constants, createPrivateKey, createPublicKey, generateKeyPairSync, publicEncrypt, randomBytes } from 'node:crypto'
import os from 'node:os'
import path from 'node:path'
import { vector } from '../helpers/vectors.js'
import { unwrapReleasedKey } from '../../src/skr/unwrap.js'
import { deriveKeyFromRsa } from '../../src/skr/derive.js'
import { generateWrappingKey, jwkSetOf } from '../../src/skr/wrapping-key.js'
import { maaReportData } from '../../src/attestation/report-data.js'

const exec = promisify(execFile)
const testKey = createPrivateKey(readFileSync(vector('keys', 'wrapping_test_key.pem')))
const json = <T>(f: string) => JSON.parse(readFileSync(vector('keys', f), 'utf8')) as T

test('the JWK set of the Go test key is byte-identical to what Go sends as runtime data', (t) => {
  const expected = readFileSync(vector('keys', 'wrapping_test_key.jwks.json'))
  t.true(jwkSetOf(createPublicKey(testKey)).equals(expected))
  // And its hash is the report_data of Go's fake report template.
  t.is(maaReportData(expected).subarray(0, 32).toString('hex'), '7ab000a323b3c873f5b81bbe584e7c1a26bcf40dc27e00f8e0d144b1ed2d14f1')
})

test('a fresh wrapping key is RSA-2048 with e=65537 and a matching JWK set', async (t) => {
  const k = await generateWrappingKey()
  t.is(k.privateKey.asymmetricKeyDetails?.modulusLength, 2048)
  t.is(k.privateKey.asymmetricKeyDetails?.publicExponent, 65537n)
  const set = JSON.parse(k.jwks.toString()) as { keys: { kty: string; key_ops: string[]; n: string }[] }
  t.deepEqual(Object.keys(set.keys[0]!), ['e', 'key_ops', 'kid', 'kty', 'n'])
  t.is(set.keys[0]!.n, (k.privateKey.export({ format: 'jwk' }) as { n: string }).n)
})

test("Go's RSA_AES key wrap vector: unwraps with CKM_RSA_AES_KEY_WRAP, fails otherwise as Go does", (t) => {
  const v = json<{ ciphertext_base64url_nopad: string; cases: { enc: string; expect: string; plaintext_hex?: string; private_key?: string }[] }>('rsa_aes_key_wrap.json')
  const blob = Buffer.from(v.ciphertext_base64url_nopad, 'base64url')
  for (const c of v.cases) {
    const key = c.private_key ? generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey : testKey
    if (c.expect === 'ok') t.is(unwrapReleasedKey(blob, c.enc, key).toString('hex'), c.plaintext_hex!)
    else t.throws(() => unwrapReleasedKey(blob, c.enc, key), { code: c.enc === 'MY_OWN_WRAP' ? 'SKR_UNWRAP_ALGORITHM' : 'SKR_UNWRAP_FAILED' } as never, c.enc)
  }
})

test('RFC 5649 examples (AES-192 KEK) unwrap through the same path; a wrong KEK fails the integrity check', (t) => {
  const v = json<{ kek_hex: string; cases: { wrapped_hex: string; plaintext_hex?: string; kek_hex?: string; expect?: string }[] }>('rfc5649.json')
  const pub = createPublicKey(testKey)
  for (const c of v.cases) {
    const kek = Buffer.from(c.kek_hex ?? v.kek_hex, 'hex')
    const rsa = publicEncrypt({ key: pub, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, kek)
    const blob = Buffer.concat([rsa, Buffer.from(c.wrapped_hex, 'hex')])
    if (c.expect === 'error') t.throws(() => unwrapReleasedKey(blob, 'RSA_AES_KEY_WRAP_256', testKey), { code: 'SKR_UNWRAP_FAILED', message: /integrity/ } as never)
    else t.is(unwrapReleasedKey(blob, 'RSA_AES_KEY_WRAP_256', testKey).toString('hex'), c.plaintext_hex!)
  }
})

test('blobs wrapped by the OpenSSL command line (OAEP SHA-1/256/384, AES-KWP) unwrap to the same key', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'encfs-wrap-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  await writeFile(path.join(dir, 'wrap.pem'), readFileSync(vector('keys', 'wrapping_test_key.pem')))
  for (const [enc, md] of [
    ['CKM_RSA_AES_KEY_WRAP', 'sha1'],
    ['RSA_AES_KEY_WRAP_256', 'sha256'],
    ['RSA_AES_KEY_WRAP_384', 'sha384'],
  ] as const) {
    const target = randomBytes(32)
    const kek = randomBytes(32)
    await writeFile(path.join(dir, 'target.bin'), target)
    await writeFile(path.join(dir, 'kek.bin'), kek)
    await exec(
      'openssl',
      [
        'pkeyutl',
        '-encrypt',
        '-inkey',
        'wrap.pem',
        '-in',
        'kek.bin',
        '-out',
        'c1.bin',
        '-pkeyopt',
        'rsa_padding_mode:oaep',
        '-pkeyopt',
        `rsa_oaep_md:${md}`,
        '-pkeyopt',
        `rsa_mgf1_md:${md}`,
      ],
      { cwd: dir },
    )
    await exec('openssl', ['enc', '-id-aes256-wrap-pad', '-K', kek.toString('hex'), '-iv', 'A65959A6', '-in', 'target.bin', '-out', 'c2.bin'], { cwd: dir })
    const blob = Buffer.concat([await readFile(path.join(dir, 'c1.bin')), await readFile(path.join(dir, 'c2.bin'))])
    t.deepEqual(unwrapReleasedKey(blob, enc, testKey), target, enc)
  }
  t.throws(() => unwrapReleasedKey(Buffer.alloc(260), 'RSA_AES_KEY_WRAP_256', testKey), { message: /expected 256 bytes of RSA-OAEP/ })
})

test('RSA key derivation: HKDF-SHA256 over d with salt and label, as the Go sidecar and importkey derive it', (t) => {
  const v = json<{ cases: { salt_hex: string; label: string; okm_hex: string }[] }>('hkdf_rsa_derivation.json')
  for (const c of v.cases) t.is(deriveKeyFromRsa(testKey, c.salt_hex, c.label).toString('hex'), c.okm_hex, `${c.label} / ${c.salt_hex || 'no salt'}`)
  t.throws(() => deriveKeyFromRsa(testKey, 'xyz'), { message: /salt must be hex/ })
  t.throws(() => deriveKeyFromRsa(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey, ''), { code: 'SKR_DERIVE_FAILED' } as never)
})
