// encfs's own LUKS2 writer, checked by real cryptsetup both ways.
import test from 'ava'
import { mkdtemp, mkdir, writeFile, readFile, readdir, rm, copyFile, stat } from 'node:fs/promises'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { randomBytes } from 'node:crypto'
import os from 'node:os'
import path from 'node:path'
import { pack } from '../../src/pack/pack.js'
import { FileSource } from '../../src/storage/file-source.js'
import { LuksVolume } from '../../src/luks/volume.js'
import { ENCFS_JS } from '../helpers/remotefs.js'
import { vector } from '../helpers/vectors.js'

const exec = promisify(execFile)
const env = { ...process.env, PATH: `${process.env.PATH}:/usr/sbin:/sbin` }
let dir: string
test.before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'encfs-packtest-'))
  await mkdir(path.join(dir, 'src', 'docs'), { recursive: true })
  await writeFile(path.join(dir, 'src', 'hello.txt'), 'hello from pack\n')
  await writeFile(path.join(dir, 'src', 'docs', 'random.bin'), randomBytes(3 * 1024 * 1024))
})
test.after.always(async () => {
  await rm(dir, { recursive: true, force: true })
})

for (const [pbkdf, sectorSize] of [
  ['pbkdf2', 4096],
  ['argon2id', 512],
] as const) {
  test(`${pbkdf}, ${sectorSize}-byte sectors: cryptsetup opens it and decrypts it offline to the ext4 encfs reads`, async (t) => {
    const key = randomBytes(32)
    key[3] = 0x0a
    const keyFile = path.join(dir, `${pbkdf}.key`)
    await writeFile(keyFile, key)
    const img = path.join(dir, `${pbkdf}.img`)
    const r = await pack({ from: path.join(dir, 'src'), out: img, key, sectorSize, pbkdf, iterations: 1000, argon2: { time: 2, memoryKiB: 16384, cpus: 1 } })
    t.is((await stat(img)).size, r.bytes)
    const dump = (await exec('cryptsetup', ['luksDump', img], { env })).stdout
    t.regex(dump, /cipher: aes-xts-plain64/)
    t.regex(dump, new RegExp(`sector: ${sectorSize} \\[bytes\\]`))
    t.regex(dump, pbkdf === 'argon2id' ? /PBKDF:\s+argon2id/ : /PBKDF:\s+pbkdf2/)
    await t.notThrowsAsync(exec('cryptsetup', ['open', '--test-passphrase', '--key-file', keyFile, img], { env }))
    await t.throwsAsync(exec('cryptsetup', ['open', '--test-passphrase', '--key-file', vector('keys', 'wrapping_test_key.pem'), img], { env }))

    // encfs's reader and cryptsetup's offline decryption agree on the plaintext, which is a clean ext4.
    const volume = await LuksVolume.open(await FileSource.open(img), key)
    const ours = await volume.read(0, volume.size)
    await volume.close()
    const copy = path.join(dir, `${pbkdf}.decrypted`)
    await copyFile(img, copy)
    await exec('cryptsetup', ['reencrypt', '--decrypt', '--header', path.join(dir, `${pbkdf}.hdr`), '--force-offline-reencrypt', '--key-file', keyFile, '-q', copy], { env })
    const theirs = await readFile(copy)
    t.true(theirs.subarray(0, ours.length).equals(ours), 'same plaintext')
    const plain = path.join(dir, `${pbkdf}.ext4`)
    await writeFile(plain, ours)
    await t.notThrowsAsync(exec('e2fsck', ['-fn', plain], { env }))
    t.is((await exec('debugfs', ['-R', 'cat /hello.txt', plain], { env })).stdout, 'hello from pack\n')
  })
}

test('encfs pack and encfs policy-digest from the command line', async (t) => {
  const keyFile = path.join(dir, 'cli.key')
  await writeFile(keyFile, randomBytes(32))
  const out = path.join(dir, 'cli.img')
  const { stdout } = await exec(process.execPath, [ENCFS_JS, 'pack', '--from', path.join(dir, 'src'), '--out', out, '--key-file', keyFile, '--size', '24M', '--iterations', '1000'])
  t.regex(stdout, /16 MiB LUKS2 header \+ 24 MiB ext4/)
  const bad = await exec(process.execPath, [ENCFS_JS, 'pack', '--from', path.join(dir, 'nope'), '--out', out, '--key-file', keyFile]).catch((e: { stderr: string }) => e)
  t.regex((bad as { stderr: string }).stderr, /--from .* is not a directory/)
  const policy = (await readFile(vector('snp', 'uvm_security_policy.base64'), 'utf8')).trim()
  const digest = await exec(process.execPath, [ENCFS_JS, 'policy-digest', '-p', policy])
  t.is(digest.stdout, 'cadd74f71ebb8fbf9782baab649612520f3c416bc5ce9ac768808ddc8d9b031c\n')
})

test('a failed pack never deletes or damages an --out file it did not finish writing', async (t) => {
  const out = path.join(dir, 'precious.img')
  const precious = randomBytes(4096)
  await writeFile(out, precious)
  // mkfs fails: 1 MiB cannot hold the 3 MiB of files.
  const err = await t.throwsAsync(pack({ from: path.join(dir, 'src'), out, key: randomBytes(32), size: 1024 * 1024, iterations: 1000 }))
  t.is((err as { code?: string }).code, 'PACK_MKFS_FAILED')
  t.deepEqual(await readFile(out), precious, 'the existing file is untouched')
  t.deepEqual(
    (await readdir(dir)).filter((f) => f.startsWith('precious.img.')),
    [],
    'no temporary file left next to it',
  )
  // A pack that succeeds replaces it, whole.
  const r = await pack({ from: path.join(dir, 'src'), out, key: randomBytes(32), iterations: 1000 })
  t.is((await stat(out)).size, r.bytes)
})
