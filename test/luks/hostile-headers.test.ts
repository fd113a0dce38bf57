// Headers an attacker who controls the blob could write, beyond cryptsetup's own refusals: key
// derivation costs that would stall start-up, digests that confirm any key, fields of the wrong
// type. Every one must end in a LuksError with a code, quickly, or in a fall-back to the intact
// header copy where cryptsetup would fall back.
import test from 'ava'
import { randomBytes } from 'node:crypto'
import { copyFile } from 'node:fs/promises'
import path from 'node:path'
import { FileSource } from '../../src/storage/file-source.js'
import { LuksVolume } from '../../src/luks/volume.js'
import { readLuks2Header } from '../../src/luks/header.js'
import { deriveKey, pbkdf2Async } from '../../src/luks/kdf.js'
import { LuksError } from '../../src/luks/errors.js'
import { editHeader, openRefusal } from '../helpers/luks-edit.js'
import { makeSmallImage, cloneKeyslot, type SmallImage } from '../helpers/small-image.js'
import { tempDir } from '../helpers/temp.js'

let work: { dir: string; cleanup(): Promise<void> }
let base: SmallImage
let n = 0

test.before(async () => {
  work = await tempDir('encfs-hostile-')
  base = await makeSmallImage(work.dir, { name: 'base.img' })
})
test.after.always(async () => {
  await work?.cleanup()
})

async function copy(): Promise<string> {
  const file = path.join(work.dir, `h-${n++}.img`)
  await copyFile(base.file, file)
  return file
}

async function edited(edit: (m: Record<string, any>) => void, copies: ('primary' | 'secondary')[] = ['primary', 'secondary']): Promise<string> {
  const file = await copy()
  for (const c of copies) await editHeader(file, c, { json: edit })
  return file
}

type OpenOptions = Parameters<typeof LuksVolume.open>[2]

/** Opens the image and expects a refusal: returns the error, which must be a LuksError. */
async function refusal(t: import('ava').ExecutionContext, file: string, key: Buffer = base.key, opts: OpenOptions = {}): Promise<LuksError> {
  const err = await openRefusal(file, key, opts)
  if (!(err instanceof LuksError)) t.fail(`not a LuksError: ${(err as Error).stack}`)
  return err as LuksError
}

async function opens(file: string, key: Buffer = base.key, opts: OpenOptions = {}): Promise<LuksVolume> {
  return LuksVolume.open(await FileSource.open(file), key, opts)
}

const wrongKey = () => randomBytes(32)

// --- 1. bounded key-derivation cost -------------------------------------------------------

test('a keyslot asking 2^31-1 pbkdf2 iterations is refused at once, naming the keyslot and its cost', async (t) => {
  const file = await edited((m) => {
    m.keyslots['0'].kdf.iterations = 2 ** 31 - 1
  })
  const started = Date.now()
  const err = await refusal(t, file)
  t.true(Date.now() - started < 2000, `refused in ${Date.now() - started} ms`)
  t.is(err.code, 'LUKS_KDF_BUDGET')
  t.regex(err.message, /keyslot 0/)
  t.regex(err.message, /2147483647 pbkdf2 iterations/)
})

test('a digest asking 2^32-1 iterations counts against the budget too', async (t) => {
  const file = await edited((m) => {
    m.digests['0'].iterations = 2 ** 32 - 1
  })
  const started = Date.now()
  const err = await refusal(t, file)
  t.true(Date.now() - started < 2000)
  t.is(err.code, 'LUKS_KDF_BUDGET')
  t.regex(err.message, /keyslot 0/)
})

test('an Argon2 keyslot asking 2^32-1 passes is refused at once', async (t) => {
  const file = await copy()
  const argon = await makeSmallImage(work.dir, { pbkdf: 'argon2id', argon2: { time: 4, memoryKiB: 1024, cpus: 1 } })
  await copyFile(argon.file, file)
  for (const c of ['primary', 'secondary'] as const)
    await editHeader(file, c, {
      json: (m) => {
        m.keyslots['0'].kdf.time = 2 ** 32 - 1
      },
    })
  const started = Date.now()
  const err = await refusal(t, file, argon.key)
  t.true(Date.now() - started < 2000)
  t.is(err.code, 'LUKS_KDF_BUDGET')
  t.regex(err.message, /keyslot 0/)
})

test('keyslots that fit the budget one by one but not together: the unlock stops at the budget', async (t) => {
  const file = await copy()
  for (const id of ['1', '2', '3']) await cloneKeyslot(file, '0', id)
  // Each slot costs 1000 (keyslot) + 1000 (digest) iterations; 5000 allows two slots, not three.
  const budget = { pbkdf2Iterations: 5000 }
  const err = await refusal(t, file, wrongKey(), { budget })
  t.is(err.code, 'LUKS_KDF_BUDGET')
  t.regex(err.message, /keyslot 2/)
  t.regex(err.message, /5000/)
  // With the right key the first slot opens well within the same budget.
  const volume = await opens(file, base.key, { budget })
  t.is(volume.keyslot, '0')
  await volume.close()
})

test('the budget is configurable: a lowered budget refuses an image the default opens', async (t) => {
  const err = await refusal(t, base.file, base.key, { budget: { pbkdf2Iterations: 1500 } })
  t.is(err.code, 'LUKS_KDF_BUDGET')
  const volume = await opens(base.file)
  t.is(volume.keyslot, '0')
  await volume.close()
})

// --- 2. only the data segment's digest confirms a key --------------------------------------

test('an extra digest bound to no segment, with an empty value, does not let a wrong key in', async (t) => {
  const file = await edited((m) => {
    const real = m.digests['0']
    m.digests = { 0: { ...real, segments: [], digest: '' }, 1: real }
  })
  const err = await refusal(t, file, wrongKey())
  t.is(err.code, 'LUKS_WRONG_KEY')
  const volume = await opens(file)
  t.true((await volume.read(0, base.plaintext.length)).equals(base.plaintext))
  await volume.close()
})

test('a digest with an unknown hash is a clean refusal, not a TypeError', async (t) => {
  const extra = await edited((m) => {
    const real = m.digests['0']
    m.digests = { 0: { ...real, segments: [], hash: 'nohash' }, 1: real }
  })
  t.is((await refusal(t, extra, wrongKey())).code, 'LUKS_WRONG_KEY')
  const segment = await edited((m) => {
    m.digests['0'].hash = 'nohash'
  })
  const err = await refusal(t, segment)
  t.is(err.code, 'LUKS_METADATA_INVALID')
  t.regex(err.message, /nohash/)
})

test('two digests covering the data segment are refused', async (t) => {
  const file = await edited((m) => {
    m.digests['1'] = { ...m.digests['0'], digest: '' }
  })
  const err = await refusal(t, file, wrongKey())
  t.is(err.code, 'LUKS_METADATA_INVALID')
})

test('a keyslot bound only to an unbound digest is not tried for the data segment', async (t) => {
  const file = await copy()
  await cloneKeyslot(file, '0', '1')
  for (const c of ['primary', 'secondary'] as const) {
    await editHeader(file, c, {
      json: (m) => {
        m.digests['0'].keyslots = ['0']
        m.digests['1'] = { ...m.digests['0'], keyslots: ['1'], segments: [], digest: '' }
        m.keyslots['0'].priority = 0
      },
    })
  }
  const err = await refusal(t, file, wrongKey())
  t.is(err.code, 'LUKS_NO_USABLE_KEYSLOT')
  t.regex(err.message, /keyslot 1: not bound to the data segment/)
})

// --- 3. wrong-typed fields: the copy is invalid; fall back to the other one ----------------

const WRONG_TYPES: [string, (m: Record<string, any>) => void][] = [
  [
    'segment sector_size as a string',
    (m) => {
      m.segments['0'].sector_size = '4096'
    },
  ],
  [
    'segment iv_tweak as a number',
    (m) => {
      m.segments['0'].iv_tweak = 0
    },
  ],
  [
    'segment offset as a number',
    (m) => {
      m.segments['0'].offset = 16777216
    },
  ],
  [
    'segment flags as a string',
    (m) => {
      m.segments['0'].flags = 'in-reencryption'
    },
  ],
  [
    'segment encryption missing',
    (m) => {
      delete m.segments['0'].encryption
    },
  ],
  [
    'config flags as a string',
    (m) => {
      m.config.flags = 'no-journal'
    },
  ],
  [
    'config flags with a number',
    (m) => {
      m.config.flags = [1]
    },
  ],
  [
    'requirements.mandatory as a string',
    (m) => {
      m.config.requirements = { mandatory: 'x' }
    },
  ],
  [
    'requirements as a string',
    (m) => {
      m.config.requirements = 'x'
    },
  ],
  [
    'keyslots_size as a number',
    (m) => {
      m.config.keyslots_size = 16744448
    },
  ],
  [
    'keyslot key_size as a string',
    (m) => {
      m.keyslots['0'].key_size = '64'
    },
  ],
  [
    'keyslot priority as a string',
    (m) => {
      m.keyslots['0'].priority = '2'
    },
  ],
  [
    'kdf iterations as a string',
    (m) => {
      m.keyslots['0'].kdf.iterations = '1000'
    },
  ],
  [
    'kdf with an extra member',
    (m) => {
      m.keyslots['0'].kdf.extra = 1
    },
  ],
  [
    'area offset as a number',
    (m) => {
      m.keyslots['0'].area.offset = 32768
    },
  ],
  [
    'area key_size missing',
    (m) => {
      delete m.keyslots['0'].area.key_size
    },
  ],
  [
    'af stripes as a string',
    (m) => {
      m.keyslots['0'].af.stripes = '4000'
    },
  ],
  [
    'af missing',
    (m) => {
      delete m.keyslots['0'].af
    },
  ],
  [
    'digest keyslots as a string',
    (m) => {
      m.digests['0'].keyslots = '0'
    },
  ],
  [
    'digest iterations negative',
    (m) => {
      m.digests['0'].iterations = -1
    },
  ],
  [
    'digest salt not base64',
    (m) => {
      m.digests['0'].salt = '!!!!'
    },
  ],
  [
    'tokens as an array',
    (m) => {
      m.tokens = []
    },
  ],
  [
    'a token naming a missing keyslot',
    (m) => {
      m.tokens['0'] = { type: 'luks2-keyring', keyslots: ['7'], key_description: 'x' }
    },
  ],
  [
    'a keyslot id that is not a number',
    (m) => {
      m.keyslots.x = m.keyslots['0']
    },
  ],
]

for (const [what, edit] of WRONG_TYPES) {
  test(`wrong type (${what}): the primary is invalid, the intact secondary is used`, async (t) => {
    const file = await edited(edit, ['primary'])
    const src = await FileSource.open(file)
    const header = await readLuks2Header(src)
    await src.close()
    t.is(header.copy, 'secondary')
    const volume = await opens(file)
    t.true((await volume.read(0, base.plaintext.length)).equals(base.plaintext), 'decrypts as the intact header says')
    await volume.close()
  })
}

test('wrong types in both copies: "header corrupted" naming the field', async (t) => {
  const file = await edited((m) => {
    m.segments['0'].sector_size = '4096'
  })
  const err = await refusal(t, file)
  t.is(err.code, 'LUKS_HEADER_CORRUPT')
  t.regex(err.message, /sector_size/)
})

// --- 4. raw errors from the KDF become LuksErrors ----------------------------------------

test('pbkdf2 iterations between 2^31 and 2^32-1 are a clean refusal even with an unlimited budget', async (t) => {
  const file = await edited((m) => {
    m.keyslots['0'].kdf.iterations = 2 ** 31 + 5
  })
  const err = await refusal(t, file, base.key, { budget: { pbkdf2Iterations: 2 ** 40 } })
  t.is(err.code, 'LUKS_KDF_UNSUPPORTED')
  t.regex(err.message, /keyslot 0/)
  await t.throwsAsync(pbkdf2Async(base.key, randomBytes(32), 2 ** 31, 32, 'sha256'), { instanceOf: LuksError })
})

test('a pbkdf2 hash of shake128 (or any hash HMAC cannot use) is a clean refusal', async (t) => {
  const slot = await edited((m) => {
    m.keyslots['0'].kdf.hash = 'shake128'
  })
  const err = await refusal(t, slot)
  t.is(err.code, 'LUKS_NO_USABLE_KEYSLOT')
  t.regex(err.message, /keyslot 0: unsupported kdf hash shake128/)
  const af = await edited((m) => {
    m.keyslots['0'].af.hash = 'shake256'
  })
  t.regex((await refusal(t, af)).message, /AF hash shake256/)
  const digest = await edited((m) => {
    m.digests['0'].hash = 'shake128'
  })
  t.is((await refusal(t, digest)).code, 'LUKS_METADATA_INVALID')
  const e = await t.throwsAsync(deriveKey({ type: 'pbkdf2', hash: 'shake128', iterations: 1000, salt: randomBytes(32) }, base.key, 64, '3'))
  t.true(e instanceof LuksError)
  t.is((e as LuksError).code, 'LUKS_KDF_UNSUPPORTED')
})

// --- 6. Argon2 memory beyond what encfs can compute -------------------------------------

test('an Argon2 keyslot of 2-4 GiB is refused up front, naming the limit', async (t) => {
  const argon = await makeSmallImage(work.dir, { pbkdf: 'argon2id', argon2: { time: 4, memoryKiB: 1024, cpus: 1 } })
  for (const c of ['primary', 'secondary'] as const)
    await editHeader(argon.file, c, {
      json: (m) => {
        m.keyslots['0'].kdf.memory = 3 * 1024 * 1024
      },
    })
  const started = Date.now()
  const err = await refusal(t, argon.file, argon.key, { maxArgon2MemoryKiB: 4 * 1024 * 1024 })
  t.true(Date.now() - started < 2000)
  t.is(err.code, 'LUKS_KDF_MEMORY')
  t.regex(err.message, /keyslot 0 needs 3072 MiB for Argon2/)
  t.regex(err.message, /2047 MiB/)
})
