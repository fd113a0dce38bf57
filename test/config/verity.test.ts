import test from 'ava'
import { validateConfig } from '../../src/config/validate.js'
import { planFilesystems } from '../../src/config/plan.js'
import { redactConfig } from '../../src/config/load.js'
import { BLOB_URL, asConfigError, rawFs } from './fixtures.js'

const ROOT = 'ab'.repeat(32)
const cfg = (verity: unknown, over: Record<string, unknown> = {}) => ({ azure_filesystems: [rawFs({ verity, ...over })] })

function issues(json: unknown): string[] {
  try {
    validateConfig(json)
  } catch (err) {
    return asConfigError(err).issues.map((i) => `${i.path}: ${i.message}`)
  }
  return []
}

test('verity with hash_url or with hash_offset validates and is planned; the root hash is kept in lower case', (t) => {
  const a = validateConfig(cfg({ root_hash: ROOT.toUpperCase(), hash_url: `${BLOB_URL}.verity?sv=1&sig=secret` }))
  t.deepEqual(a.azure_filesystems[0]!.verity, { root_hash: ROOT, hash_url: `${BLOB_URL}.verity?sv=1&sig=secret` })
  const [pa] = planFilesystems(a, { allowRawKey: true })
  t.deepEqual(pa!.verity, { rootHash: ROOT, hashUrl: `${BLOB_URL}.verity?sv=1&sig=secret` })
  const b = validateConfig(cfg({ ROOT_HASH: ROOT, Hash_Offset: 4096 * 5000 }))
  t.deepEqual(b.azure_filesystems[0]!.verity, { root_hash: ROOT, hash_offset: 4096 * 5000 }, 'member names are matched as Go matches them')
  t.deepEqual(planFilesystems(b, { allowRawKey: true })[0]!.verity, { rootHash: ROOT, hashOffset: 4096 * 5000 })
  t.is(validateConfig(cfg({ root_hash: ROOT, hash_offset: 0 })).azure_filesystems[0]!.verity?.hash_offset, 0, 'offset 0: a tree file mounted as the image is allowed')
  t.is(validateConfig({ azure_filesystems: [rawFs()] }).azure_filesystems[0]!.verity, undefined)
})

test("the hash_url SAS is redacted like azure_url's", (t) => {
  const red = redactConfig(validateConfig(cfg({ root_hash: ROOT, hash_url: `${BLOB_URL}.verity?sv=1&sig=secret` })))
  t.false(JSON.stringify(red).includes('secret'))
  t.is(red.azure_filesystems[0]!.verity?.root_hash, ROOT)
})

test('root_hash must be 64 hex digits, and is required', (t) => {
  t.deepEqual(issues(cfg({ hash_offset: 0 })), [
    'azure_filesystems[0].verity.root_hash: is required: the sha256 root hash (64 hex digits) that encfs pack --verity or veritysetup format printed',
  ])
  t.deepEqual(issues(cfg({ root_hash: 'abc', hash_offset: 0 })), [
    'azure_filesystems[0].verity.root_hash: must be 64 hex digits (a sha256 root hash, as encfs pack --verity or veritysetup format print it), got 3 characters',
  ])
  t.regex(issues(cfg({ root_hash: 'z'.repeat(64), hash_offset: 0 }))[0]!, /got 64 characters that are not all hex/)
  t.regex(issues(cfg({ root_hash: 7, hash_offset: 0 }))[0]!, /verity\.root_hash: must be a string, got a number/)
})

test('exactly one of hash_url and hash_offset', (t) => {
  t.deepEqual(issues(cfg({ root_hash: ROOT })), [
    'azure_filesystems[0].verity: needs hash_url (the hash tree as its own blob) or hash_offset (the hash tree inside the image blob, after the data)',
  ])
  t.regex(issues(cfg({ root_hash: ROOT, hash_url: BLOB_URL, hash_offset: 4096 }))[0]!, /^azure_filesystems\[0\]\.verity: give hash_url or hash_offset, not both/)
})

test('hash_offset must be a non-negative multiple of 4096; hash_url a blob URL', (t) => {
  for (const bad of [-4096, 4097, 1.5, '4096', 2 ** 60]) {
    t.regex(
      issues(cfg({ root_hash: ROOT, hash_offset: bad }))[0]!,
      /^azure_filesystems\[0\]\.verity\.hash_offset: must be a byte offset that is a non-negative multiple of 4096/,
      JSON.stringify(bad),
    )
  }
  t.regex(issues(cfg({ root_hash: ROOT, hash_url: 'ftp://host/x' }))[0]!, /^azure_filesystems\[0\]\.verity\.hash_url: unsupported scheme "ftp:"/)
  t.regex(
    issues(cfg({ root_hash: ROOT, hash_url: 'http://example.com/x' }, { azure_url_private: true }))[0]!,
    /verity\.hash_url: is plain http, and .*azure_url_private: true sends a bearer token/,
  )
  t.regex(issues(cfg({ root_hash: ROOT, hash_url: '' }))[0]!, /verity\.hash_url: must not be empty/)
  t.regex(issues(cfg('yes'))[0]!, /^azure_filesystems\[0\]\.verity: must be an object, got a string/)
})

test('read_write filesystems refuse verity, naming the field', (t) => {
  t.deepEqual(issues(cfg({ root_hash: ROOT, hash_offset: 4096 }, { read_write: true })), [
    'azure_filesystems[0].verity: cannot be used with read_write: true: a dm-verity hash tree covers one fixed version of the image and cannot follow writes; mount this filesystem read-only or remove verity',
  ])
})

test('every verity problem is reported at once, next to the others', (t) => {
  const found = issues({ azure_filesystems: [rawFs({ mount_point: 'rel', verity: { root_hash: 'x', hash_offset: 3 } })] })
  t.is(found.length, 3)
})

test('data_blocks pins the data the tree covers: a positive whole number, planned, and agreeing with hash_offset', (t) => {
  const a = validateConfig(cfg({ root_hash: ROOT, hash_url: BLOB_URL, data_blocks: 8448 }))
  t.deepEqual(planFilesystems(a, { allowRawKey: true })[0]!.verity, { rootHash: ROOT, hashUrl: BLOB_URL, dataBlocks: 8448 })
  t.is(validateConfig(cfg({ root_hash: ROOT, hash_offset: 4096 * 10, data_blocks: 10 })).azure_filesystems[0]!.verity?.data_blocks, 10)
  for (const bad of [0, -1, 1.5, '10'])
    t.regex(issues(cfg({ root_hash: ROOT, hash_url: BLOB_URL, data_blocks: bad }))[0]!, /^azure_filesystems\[0\]\.verity\.data_blocks: must be the number of 4096-byte data blocks/)
  t.deepEqual(issues(cfg({ root_hash: ROOT, hash_offset: 4096 * 10, data_blocks: 9 })), [
    'azure_filesystems[0].verity.data_blocks: 9 blocks are 36864 bytes, but hash_offset 40960 says the data ends there: an appended tree covers everything before it',
  ])
})
