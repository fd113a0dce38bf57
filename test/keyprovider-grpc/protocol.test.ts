// The keyprovider protocol JSON and annotation formats, against Go's example vectors.
import test from 'ava'
import { runCommand } from '../../src/process/run.js'
import { within } from '../helpers/time.js'
import { readFile, writeFile, mkdtemp, rm } from 'node:fs/promises'
import { generateKeyPairSync, privateDecrypt, constants } from 'node:crypto'
import os from 'node:os'
import path from 'node:path'
import { vector } from '../helpers/vectors.js'
import { parseProtocolInput, unwrapRequest, wrapRequest, unwrapOutput, wrapOutput } from '../../src/keyprovider-grpc/protocol.js'
import { parseAnnotation, formatAnnotation } from '../../src/keyprovider-grpc/annotation.js'
import { wrapWithKeyInfo, unwrapWithPrivateKey, MAX_KEY_FILE_BYTES } from '../../src/keyprovider-grpc/wrap.js'
import { KeyProviderError } from '../../src/keyprovider-grpc/errors.js'

interface Example {
  annotation_decoded_keys_in_order: string[]
  annotation_decoded_values: { kid: string; wrap_type: string; kms_endpoint: string; attester_endpoint: string; wrapped_data_decoded_length: number }
  keyprovider_input_json_example: unknown
  keyprovider_output_base64_from_readme: string
  keyprovider_output_json_from_readme: string
}
const example = async () => JSON.parse(await readFile(vector('keyprovider', 'unwrap_example.json'), 'utf8')) as Example
const b64 = (x: string | Buffer) => Buffer.from(x).toString('base64')

test("Go's example keyunwrap request parses: agent skr, the annotation of testkey000 with a 384-byte wrapped secret", async (t) => {
  const ex = await example()
  const annotationBytes = unwrapRequest(parseProtocolInput(Buffer.from(JSON.stringify(ex.keyprovider_input_json_example))))
  const fileAnnotation = Buffer.from((await readFile(vector('keyprovider', 'wrapped_annotation.b64'), 'utf8')).trim(), 'base64')
  t.deepEqual(annotationBytes, fileAnnotation)
  const a = parseAnnotation(annotationBytes)
  const v = ex.annotation_decoded_values
  t.like(a, { kid: v.kid, wrapType: v.wrap_type, kmsEndpoint: v.kms_endpoint, attesterEndpoint: v.attester_endpoint })
  t.is(a.wrappedData.length, v.wrapped_data_decoded_length)
  t.deepEqual(Object.keys(JSON.parse(annotationBytes.toString()) as object), ex.annotation_decoded_keys_in_order)
})

test("an annotation written by encfs is byte-identical to the one Go's skr wrote for the same fields", async (t) => {
  const fileAnnotation = Buffer.from((await readFile(vector('keyprovider', 'wrapped_annotation.b64'), 'utf8')).trim(), 'base64')
  t.is(formatAnnotation(parseAnnotation(fileAnnotation)).toString(), fileAnnotation.toString())
})

test("the keyunwrap answer is byte-identical to Go's README output for the example plaintext", async (t) => {
  const ex = await example()
  // The README's run shows the plaintext with CRLF line endings.
  const plaintext = Buffer.from((await readFile(vector('keyprovider', 'plaintext.txt'), 'utf8')).replace(/\r?\n/g, '\r\n'))
  const out = unwrapOutput(plaintext)
  t.is(out.toString(), ex.keyprovider_output_json_from_readme)
  t.is(out.toString('base64'), ex.keyprovider_output_base64_from_readme)
})

test('the keywrap answer carries the annotation and a null optsdata, as Go prints it', (t) => {
  t.is(wrapOutput(Buffer.from('{"kid":"k"}')).toString(), `{"keywrapresults":{"annotation":"${b64('{"kid":"k"}')}"},"keyunwrapresults":{"optsdata":null}}`)
})

test("member names match case-insensitively and null members count as absent, as with Go's encoding/json", (t) => {
  const annotation = b64('{"KID":"k1","Wrapped_Data":"AAEC","kms_endpoint":"v.vault.azure.net","ATTESTER_ENDPOINT":"m.attest.azure.net","iv":null}')
  const input = { OP: 'keyunwrap', KeyWrapParams: null, KEYUNWRAPPARAMS: { DC: { parameters: { 'attestation-agent': [b64('SKR')], other: null } }, Annotation: annotation } }
  const a = parseAnnotation(unwrapRequest(parseProtocolInput(Buffer.from(JSON.stringify(input)))))
  t.like(a, { kid: 'k1', kmsEndpoint: 'v.vault.azure.net', attesterEndpoint: 'm.attest.azure.net' })
  t.deepEqual(a.wrappedData, Buffer.from([0, 1, 2]))
})

test('the provider name under Parameters matches exactly, as a Go map key', (t) => {
  const input = { op: 'keyunwrap', keyunwrapparams: { dc: { Parameters: { 'Attestation-Agent': [b64('skr')] } }, annotation: b64('{}') } }
  const err = t.throws(() => unwrapRequest(parseProtocolInput(Buffer.from(JSON.stringify(input)))), { instanceOf: KeyProviderError })
  t.is(err?.code, 'KEYPROVIDER_INPUT_INVALID')
  t.regex(err?.message ?? '', /Parameters\["attestation-agent"\] is missing/)
})

test('every wrong member type is reported with its path at once', (t) => {
  const input = { op: 3, keywrapparams: { ec: { Parameters: { 'attestation-agent': 'c2tr' } }, optsdata: 'no base64' }, keyunwrapparams: [] }
  const err = t.throws(() => parseProtocolInput(Buffer.from(JSON.stringify(input))), { instanceOf: KeyProviderError })
  t.deepEqual(err?.problems, [
    'op must be a string, got a number',
    'keyunwrapparams must be an object, got an array',
    'keywrapparams.ec.Parameters["attestation-agent"] must be an array of base64 strings, got a string',
    'keywrapparams.optsdata must be standard base64',
  ])
})

test('keywrap takes skr:<key path> (skr in any case, the path may hold colons)', (t) => {
  const input = (agent: string) =>
    Buffer.from(JSON.stringify({ op: 'keywrap', keywrapparams: { ec: { Parameters: { 'attestation-agent': [b64(agent)] } }, optsdata: b64('data') } }))
  t.deepEqual(wrapRequest(parseProtocolInput(input('SKR:/keys/a:b'))), { keyPath: '/keys/a:b', optsdata: Buffer.from('data') })
  t.throws(() => wrapRequest(parseProtocolInput(input('aasp:/keys/a'))), { message: /names the attestation agent "aasp", but this key provider is "skr"/ })
  t.throws(() => wrapRequest(parseProtocolInput(input('/keys/a'))), { message: /is "\/keys\/a": it must be "skr:<key path>"/ })
})

test('wrapWithKeyInfo reads <key>-info.json and the PEM key, and only the private key unwraps the result', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'encfs-wrap-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 })
  await writeFile(path.join(dir, 'mykey-pub.pem'), publicKey.export({ format: 'pem', type: 'spki' }))
  await writeFile(
    path.join(dir, 'mykey-info.json'),
    JSON.stringify({ public_key_path: path.join(dir, 'mykey-pub.pem'), kms_endpoint: 'h.managedhsm.azure.net', attester_endpoint: 'a.attest.azure.net' }),
  )
  const { annotation } = await wrapWithKeyInfo(Buffer.from('layer key <&>'), path.join(dir, 'mykey'))
  const text = annotation.toString()
  t.regex(
    text,
    /^\{"kid":"mykey","wrapped_data":"[A-Za-z0-9+/]+={0,2}","wrap_type":"rsa_3072","kms_endpoint":"h\.managedhsm\.azure\.net","attester_endpoint":"a\.attest\.azure\.net"\}$/,
  )
  const parsed = parseAnnotation(annotation)
  t.is(privateDecrypt({ key: privateKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, parsed.wrappedData).toString(), 'layer key <&>')
  t.is(unwrapWithPrivateKey(parsed.wrappedData, privateKey, 'mykey').toString(), 'layer key <&>')
  t.throws(() => unwrapWithPrivateKey(parsed.wrappedData, generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey, 'mykey'), {
    message: /cannot be decrypted with the released key mykey/,
  })
})

test('wrapWithKeyInfo says which file is missing or wrong', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'encfs-wrap-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const key = path.join(dir, 'k')
  await t.throwsAsync(wrapWithKeyInfo(Buffer.from('x'), key), { message: /cannot read the key info file .*k-info\.json \(ENOENT\)/ })
  await writeFile(`${key}-info.json`, '{"public_key_path":"","kms_endpoint":"https://v.vault.azure.net","attester_endpoint":"a"}')
  await t.throwsAsync(wrapWithKeyInfo(Buffer.from('x'), key), { message: /public_key_path is required.*kms_endpoint must be a host name without a scheme/ })
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  await writeFile(`${key}.pem`, ec.publicKey.export({ format: 'pem', type: 'spki' }))
  await writeFile(`${key}-info.json`, JSON.stringify({ public_key_path: `${key}.pem`, kms_endpoint: 'v.vault.azure.net', attester_endpoint: 'a.attest.azure.net' }))
  await t.throwsAsync(wrapWithKeyInfo(Buffer.from('x'), key), { message: /holds a ec key; wrapping needs an RSA public key/ })
  const small = generateKeyPairSync('rsa', { modulusLength: 1024 })
  await writeFile(`${key}.pem`, small.publicKey.export({ format: 'pem', type: 'spki' }))
  await t.throwsAsync(wrapWithKeyInfo(Buffer.alloc(100), key), { message: /cannot wrap 100 bytes with the 1024-bit key .*at most 62 bytes/ })
})

test('wrapWithKeyInfo reads key files of a bounded size only: a FIFO, a device or an oversized file is refused at once, naming public_key_path', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'encfs-wrap-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const key = path.join(dir, 'k')
  const info = (publicKeyPath: string) =>
    writeFile(`${key}-info.json`, JSON.stringify({ public_key_path: publicKeyPath, kms_endpoint: 'v.vault.azure.net', attester_endpoint: 'a.attest.azure.net' }))
  const fifo = path.join(dir, 'fifo')
  await runCommand('mkfifo', [fifo])
  for (const [file, reason] of [
    [fifo, /not a regular file \(a FIFO\)/],
    ['/dev/zero', /not a regular file \(a device or socket\)/],
    [dir, /not a regular file \(a directory\)/],
  ] as const) {
    await info(file)
    const err = await within(5000, `reading ${file}`, t.throwsAsync(wrapWithKeyInfo(Buffer.from('x'), key)))
    t.regex(err!.message, new RegExp(`cannot read the public key ${file} \\(public_key_path; ${reason.source}`), file)
    t.is((err as { code?: string }).code, 'KEYPROVIDER_KEY_INFO')
  }
  const big = path.join(dir, 'big.pem')
  await writeFile(big, Buffer.alloc(MAX_KEY_FILE_BYTES + 1, 0x41))
  await info(big)
  await t.throwsAsync(wrapWithKeyInfo(Buffer.from('x'), key), {
    message: /cannot read the public key .*big\.pem \(public_key_path; 65537 bytes, more than the 65536 such a file can hold\)/,
  })
})
