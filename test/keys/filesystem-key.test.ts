// One way from a released (or imported) key to a filesystem key, for remotefs, encfs release
// --check-image and encfs import-key alike.
import test from 'ava'
import { generateKeyPairSync, randomBytes } from 'node:crypto'
import { filesystemKey } from '../../src/keys/filesystem-key.js'
import { deriveKeyFromRsa, DEFAULT_DERIVATION_LABEL } from '../../src/skr/derive.js'
import { KeyError } from '../../src/keys/errors.js'

const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey
const der = rsa.export({ format: 'der', type: 'pkcs8' })
const salt = 'cd'.repeat(32)

test('an oct key of 32 bytes is the key file, copied', (t) => {
  const material = randomBytes(32)
  const key = filesystemKey({ kty: 'oct', material }, { salt: '' }, 'k')
  t.deepEqual(key, material)
  key.fill(0)
  t.notDeepEqual(material, Buffer.alloc(32), 'the caller zeroes its copy, not the released key')
})

test('an oct key of another size is refused, naming the key', (t) => {
  const err = t.throws(() => filesystemKey({ kty: 'oct', material: randomBytes(16) }, { salt: '' }, 'azure_filesystems[2].key: the released key k1'), { instanceOf: KeyError })
  t.is(err?.code, 'KEY_RELEASED_SIZE')
  t.regex(String(err?.message), /^azure_filesystems\[2\]\.key: the released key k1 is an oct key of 16 bytes; filesystem keys are 32 bytes$/)
})

test('an RSA key, released as PKCS#8 or in hand, gives the HKDF of its private exponent with salt and label', (t) => {
  const expected = deriveKeyFromRsa(rsa, salt, 'Model Key')
  t.deepEqual(filesystemKey({ kty: 'RSA', material: der }, { salt, label: 'Model Key' }, 'k'), expected)
  t.deepEqual(filesystemKey({ kty: 'RSA', privateKey: rsa }, { salt, label: 'Model Key' }, 'k'), expected)
  t.deepEqual(filesystemKey({ kty: 'RSA', material: der }, { salt, label: '' }, 'k'), deriveKeyFromRsa(rsa, salt, DEFAULT_DERIVATION_LABEL), 'an empty label is the default')
})

test('an EC key cannot open a filesystem', (t) => {
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'der', type: 'pkcs8' })
  const err = t.throws(() => filesystemKey({ kty: 'EC', material: ec }, { salt: '' }, 'the released key k2'), { instanceOf: KeyError })
  t.is(err?.code, 'KEY_RELEASED_TYPE')
  t.regex(String(err?.message), /the released key k2 is EC; filesystems take oct or RSA keys/)
})
