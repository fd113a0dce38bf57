import test from 'ava'
import { randomBytes } from 'node:crypto'
import { writeFile } from 'node:fs/promises'
import path from 'node:path'
import { openVerity } from '../../src/verity/open-verity.js'
import { silentLogger } from '../../src/log/logger.js'
import { MemorySource } from '../helpers/memory-source.js'
import { tempDir } from '../helpers/temp.js'
import { veritysetupFormat } from '../helpers/verity.js'

test('a hash_url that cannot be opened is named as the hash tree, and the image is left to its owner', async (t) => {
  const image = new MemorySource(8192)
  const err = await t.throwsAsync(openVerity(image, { rootHash: 'ab'.repeat(32), hashUrl: '/nonexistent/encfs.img.verity' }, { private: false, logger: silentLogger }))
  t.is((err as { code?: string }).code, 'STORAGE_NOT_FOUND')
  t.regex(err!.message, /^verity\.hash_url \(the hash tree\): image file \/nonexistent\/encfs\.img\.verity does not exist/)
  t.false(image.closed)
})

test('a hash_url tree that does not match is refused naming hash_url; the image is left to its owner', async (t) => {
  const tmp = await tempDir()
  try {
    const data = path.join(tmp.dir, 'd')
    await writeFile(data, randomBytes(64 * 4096))
    await veritysetupFormat(data, path.join(tmp.dir, 'h'))
    const image = new MemorySource(64 * 4096)
    const err = await t.throwsAsync(openVerity(image, { rootHash: 'ab'.repeat(32), hashUrl: path.join(tmp.dir, 'h') }, { private: false, logger: silentLogger }))
    t.is((err as { code?: string }).code, 'VERITY_ROOT_MISMATCH')
    t.regex(err!.message, /^verity\.hash_url .*\/h: the hash tree does not match verity\.root_hash/)
    t.false(image.closed)
  } finally {
    await tmp.cleanup()
  }
})
