// dm-verity end to end: images and trees made by real veritysetup, mounted from Azurite by
// remotefs; and the tampering a storage owner can do, each caught before decryption.
import test, { type ExecutionContext } from 'ava'
import { randomBytes } from 'node:crypto'
import { copyFile, readFile, writeFile, lstat, stat } from 'node:fs/promises'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import path from 'node:path'
import { E2eFixture, freePort, stopSidecar, readFromChild, leftovers, type FsConfig, type Sidecar, type TestImage } from '../helpers/e2e.js'
import { veritysetupFormat } from '../helpers/verity.js'
import { runCommand } from '../../src/process/run.js'
import { TreeGeometry } from '../../src/verity/geometry.js'
import { FileSource } from '../../src/storage/file-source.js'
import { LuksVolume } from '../../src/luks/volume.js'

const exec = promisify(execFile)
const e2e = new E2eFixture(test)
let img: TestImage
let imageBytes: number
let snp: string
const VICTIM = randomBytes(1024 * 1024)
const FILES = { 'victim.bin': VICTIM, 'intact.txt': 'still intact\n', 'docs/other.txt': 'another intact file\n' }

test.before(async () => {
  img = await e2e.image({ fsSizeMiB: 8, files: FILES })
  imageBytes = (await stat(img.image)).size
  snp = await e2e.tempDir('encfs-verity-snp-')
})

/** The 4 KiB data block (of the image as stored) that holds block `n` of a file in the ext4. */
async function dataBlockOf(file: string, n = 0): Promise<number> {
  const { stdout } = await runCommand('debugfs', ['-R', `bmap /${file} ${n}`, img.plain])
  return img.payloadOffset / 4096 + Number(stdout.trim())
}

/** A copy of the image in the test's work directory, edited by `edit`. */
async function variant(name: string, edit?: (bytes: Buffer) => void | Promise<void>): Promise<string> {
  const file = path.join(img.dir, name)
  const bytes = await readFile(img.image)
  await edit?.(bytes)
  await writeFile(file, bytes)
  return file
}

async function upload(file: string): Promise<string> {
  return (await e2e.upload(file, { kind: 'block' })).sasUrl
}

interface Mounted {
  sidecar: Sidecar
  mp: string
  port: number
}

async function mount(filesystems: Partial<FsConfig>[]): Promise<Mounted> {
  const ws = await e2e.workspace()
  const mps = filesystems.map((_, i) => path.join(ws.parent, `fs${i}`))
  const port = await freePort()
  const fss = mps.map((mp, i) => ({ mount_point: mp, raw_key: img.key.toString('hex'), ...filesystems[i] })) as FsConfig[]
  const sidecar = await e2e.mount(fss, { args: ['--allow-raw-key', '-port', String(port), '--attestation', 'simulated', '--simulated-state', snp] })
  return { sidecar, mp: mps[0]!, port }
}

async function status(
  port: number,
): Promise<{ filesystems: { verity?: { rootHash: string; verifiedBlocks: number; failedReads: number; badDataBlocks: number; badHashBlocks: number; firstFailure?: string } }[] }> {
  return (await (await fetch(`http://127.0.0.1:${port}/status`)).json()) as never
}

async function expectEio(t: ExecutionContext, file: string): Promise<void> {
  const err = await t.throwsAsync(readFromChild(file), undefined, `${file} must not be readable`)
  t.regex(String((err as { stderr?: Buffer }).stderr ?? err?.message), /Input\/output error/, `${file}: EIO`)
}

async function expectIntact(t: ExecutionContext, mp: string): Promise<void> {
  t.is((await readFromChild(path.join(mp, 'intact.txt'))).toString(), FILES['intact.txt'])
  t.is((await readFromChild(path.join(mp, 'docs/other.txt'))).toString(), FILES['docs/other.txt'])
}

async function stopClean(t: ExecutionContext, m: Mounted): Promise<void> {
  t.is(await stopSidecar(m.sidecar), 0)
  t.deepEqual(await leftovers(m.sidecar.runtimeDir, [path.join(path.dirname(m.mp), '.filesystem-0'), path.join(path.dirname(m.mp), '.filesystem-1')]), [])
}

test.serial('images and trees made by veritysetup format mount from Azurite, with hash_url and with hash_offset; /status counts the verified blocks', async (t) => {
  const hashFile = path.join(img.dir, 'separate.verity')
  const root = await veritysetupFormat(img.image, hashFile)
  const appended = await variant('appended.img')
  const appendedRoot = await veritysetupFormat(appended, appended, { hashOffset: imageBytes, dataBlocks: imageBytes / 4096 })
  const [imageUrl, hashUrl, appendedUrl] = await Promise.all([upload(img.image), upload(hashFile), upload(appended)])
  const m = await mount([
    { azure_url: imageUrl, verity: { root_hash: root.toString('hex'), hash_url: hashUrl } },
    { azure_url: appendedUrl, verity: { root_hash: appendedRoot.toString('hex'), hash_offset: imageBytes } },
  ])
  for (const mp of [m.mp, m.mp.replace(/fs0$/, 'fs1')]) {
    t.true((await readFromChild(path.join(mp, 'victim.bin'))).equals(VICTIM), `${mp}: victim.bin`)
    await expectIntact(t, mp)
  }
  const s = await status(m.port)
  t.is(s.filesystems[0]!.verity?.rootHash, root.toString('hex'))
  t.is(s.filesystems[1]!.verity?.rootHash, appendedRoot.toString('hex'))
  for (const f of s.filesystems) {
    t.true((f.verity?.verifiedBlocks ?? 0) > 256, 'blocks were verified')
    t.like(f.verity, { failedReads: 0, badDataBlocks: 0, badHashBlocks: 0 })
  }
  t.regex(await m.sidecar.log(), /dm-verity hash tree matches the pinned root hash/)
  await stopClean(t, m)
})

test.serial(
  'a flipped ciphertext byte and a sector copied from another offset: EIO for the file over them, each block named in the log and counted; intact files read',
  async (t) => {
    const flipped = await dataBlockOf('victim.bin', 5)
    const overwritten = await dataBlockOf('victim.bin', 200)
    const source = await dataBlockOf('intact.txt', 0)
    const hashFile = path.join(img.dir, 'tamper.verity')
    const root = await veritysetupFormat(img.image, hashFile)
    const tampered = await variant('tampered.img', (b) => {
      b[flipped * 4096 + 1234]! ^= 0x01
      b.copy(b, overwritten * 4096, source * 4096, source * 4096 + 4096)
    })
    const [imageUrl, hashUrl] = await Promise.all([upload(tampered), upload(hashFile)])
    const m = await mount([{ azure_url: imageUrl, verity: { root_hash: root.toString('hex'), hash_url: hashUrl } }])
    await expectEio(t, path.join(m.mp, 'victim.bin'))
    await expectIntact(t, m.mp)
    // The parts of the victim before the first bad block are intact too, and served.
    const { stdout: head } = await exec('dd', [`if=${path.join(m.mp, 'victim.bin')}`, 'bs=4096', 'count=5', 'status=none'], { encoding: 'buffer' })
    t.true(head.equals(VICTIM.subarray(0, 5 * 4096)), 'the blocks before the flipped one')
    const log = await m.sidecar.log()
    t.regex(log, new RegExp(`INTEGRITY VIOLATION: data block ${flipped} \\(image bytes ${flipped * 4096}-`), 'the first bad block, loudly')
    t.regex(log, new RegExp(`"block":${overwritten},.*data block ${overwritten} \\(image bytes`), 'the copied sector is named too')
    t.regex(log, /read failed; answering EIO/)
    const v = (await status(m.port)).filesystems[0]!.verity!
    t.is(v.badDataBlocks, 2)
    t.true(v.failedReads >= 2)
    t.regex(v.firstFailure!, new RegExp(`data block ${flipped} `))
    await stopClean(t, m)
    // Verified blocks are served by the libfuse3 threads from the cache (no JavaScript per read).
    const stats = /"fuse":\{[^}]*"nativeReads":(\d+)/.exec(await m.sidecar.log())
    t.true(Number(stats?.[1]) > 0, `reads served natively: ${stats?.[0]}`)
  },
)

test.serial('the blob replaced by an older image under the same key: the rolled-back file fails with EIO, the rest reads', async (t) => {
  // The "newer" image: the same LUKS header and key, the victim's first 64 KiB rewritten.
  const newer = await variant('newer.img')
  const source = await FileSource.open(newer, { writable: true })
  const volume = await LuksVolume.open(source, img.key)
  const first = (await dataBlockOf('victim.bin', 0)) * 4096 - img.payloadOffset
  await volume.write(first, randomBytes(64 * 1024))
  await volume.close()
  const hashFile = path.join(img.dir, 'newer.verity')
  const root = await veritysetupFormat(newer, hashFile)
  // The storage owner puts the older image back (the tree blob is left alone).
  const [imageUrl, hashUrl] = await Promise.all([upload(img.image), upload(hashFile)])
  const m = await mount([{ azure_url: imageUrl, verity: { root_hash: root.toString('hex'), hash_url: hashUrl } }])
  await expectEio(t, path.join(m.mp, 'victim.bin'))
  await expectIntact(t, m.mp)
  t.regex(await m.sidecar.log(), new RegExp(`INTEGRITY VIOLATION: data block ${first / 4096 + img.payloadOffset / 4096} `))
  t.is((await status(m.port)).filesystems[0]!.verity!.badDataBlocks, 16, 'the 16 rolled-back blocks')
  await stopClean(t, m)
})

test.serial('a flipped byte in the hash tree: EIO for the data under that hash block, named in the log; intact files read', async (t) => {
  const middle = await dataBlockOf('victim.bin', 128)
  const hashFile = path.join(img.dir, 'tree-tamper.verity')
  const root = await veritysetupFormat(img.image, hashFile)
  const g = new TreeGeometry(imageBytes / 4096)
  const hb = Math.floor(middle / 128)
  for (const other of ['intact.txt', 'docs/other.txt']) t.not(Math.floor((await dataBlockOf(other)) / 128), hb, `${other} is outside the damaged hash block`)
  const tree = await readFile(hashFile)
  tree[g.blockOffset(0, hb) + 77]! ^= 0x10
  await writeFile(hashFile, tree)
  const [imageUrl, hashUrl] = await Promise.all([upload(img.image), upload(hashFile)])
  const m = await mount([{ azure_url: imageUrl, verity: { root_hash: root.toString('hex'), hash_url: hashUrl } }])
  await expectEio(t, path.join(m.mp, 'victim.bin'))
  await expectIntact(t, m.mp)
  t.regex(await m.sidecar.log(), new RegExp(`INTEGRITY VIOLATION: hash block ${hb} of tree level 0 .*data blocks ${hb * 128}-${hb * 128 + 127} cannot be verified`))
  t.is((await status(m.port)).filesystems[0]!.verity!.badHashBlocks, 1)
  await stopClean(t, m)
})

test.serial('refused at mount: a wrong root hash, an edited superblock, an older image with its own tree; nothing is left behind', async (t) => {
  const appended = await variant('refuse.img')
  const root = await veritysetupFormat(appended, appended, { hashOffset: imageBytes, dataBlocks: imageBytes / 4096 })
  const wrongRoot = Buffer.from(root)
  wrongRoot[0]! ^= 0xff
  const edited = path.join(img.dir, 'edited-sb.img')
  await copyFile(appended, edited)
  const bytes = await readFile(edited)
  bytes.writeBigUInt64LE(BigInt(imageBytes / 4096 - 128), imageBytes + 72)
  await writeFile(edited, bytes)
  // An older image of the same size with a tree of its own, in place of the one pinned.
  const older = await e2e.image({ fsSizeMiB: 8, files: { 'intact.txt': 'old\n' }, key: img.key })
  await veritysetupFormat(older.image, older.image, { hashOffset: imageBytes, dataBlocks: imageBytes / 4096 })
  const cases: [string, string, string][] = [
    [await upload(appended), wrongRoot.toString('hex'), 'VERITY_ROOT_MISMATCH'],
    [await upload(edited), root.toString('hex'), 'VERITY_SUPERBLOCK_MISMATCH'],
    [await upload(older.image), root.toString('hex'), 'VERITY_ROOT_MISMATCH'],
  ]
  for (const [url, rootHash, code] of cases) {
    const ws = await e2e.workspace()
    const mp = path.join(ws.parent, 'x')
    const r = await e2e.runToEnd([{ mount_point: mp, azure_url: url, raw_key: img.key.toString('hex'), verity: { root_hash: rootHash, hash_offset: imageBytes } }], {
      args: ['--allow-raw-key'],
    })
    t.not(r.code, 0, code)
    t.regex(r.output, new RegExp(`verity.*\\[${code}\\]`), code)
    await t.throwsAsync(lstat(mp), undefined, 'no mount point')
    t.deepEqual(await leftovers(r.runtimeDir, [path.join(ws.parent, '.filesystem-0')]), [])
  }
})
