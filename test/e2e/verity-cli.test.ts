// The dm-verity tools as a user runs them: encfs pack --verity (appended, or --hash-out), checked
// by real veritysetup; encfs upload of both; the printed configuration mounted from Azurite;
// encfs inspect and encfs verify.
import test, { type ExecutionContext } from 'ava'
import { mkdir, writeFile, readFile, stat } from 'node:fs/promises'
import path from 'node:path'
import { randomBytes } from 'node:crypto'
import { E2eFixture, blobSas, runEncfs, stopSidecar, readFromChild, type Azurite } from '../helpers/e2e.js'
import { veritysetupVerify } from '../helpers/verity.js'

const e2e = new E2eFixture(test)
let az: Azurite
let work: string
const KEY = randomBytes(32)
const FILES: Record<string, Buffer> = { 'a.txt': Buffer.from('packed with a hash tree\n'), 'b/c.bin': randomBytes(200_000) }

test.before(async () => {
  az = await e2e.azurite()
  work = await e2e.tempDir('encfs-verity-cli-')
  for (const [rel, content] of Object.entries(FILES)) {
    await mkdir(path.dirname(path.join(work, 'files', rel)), { recursive: true })
    await writeFile(path.join(work, 'files', rel), content)
  }
  await writeFile(path.join(work, 'key.bin'), KEY)
})

const encfs = runEncfs

async function pack(name: string, extra: string[]): Promise<{ image: string; out: string; verity: { root_hash: string; hash_offset?: number; hash_url?: string } }> {
  const image = path.join(work, name)
  const r = await encfs(['pack', '--from', path.join(work, 'files'), '--out', image, '--key-file', path.join(work, 'key.bin'), '--iterations', '1000', ...extra])
  if (r.code !== 0) throw new Error(r.stderr)
  const json = /"verity": (\{.*\})/.exec(r.stdout)?.[1]
  if (!json) throw new Error(`no verity JSON in: ${r.stdout}`)
  return { image, out: r.stdout, verity: JSON.parse(json) as { root_hash: string; hash_offset?: number } }
}

function sas(container: string, blob: string, permissions: string): string {
  return `${az.blobEndpoint}/${container}/${blob}?${blobSas(az, container, blob, permissions)}`
}

/** Mounts the uploaded image with the printed verity member, as the pod would, and reads every file. */
async function mountAndRead(t: ExecutionContext, url: string, verity: Record<string, unknown>): Promise<void> {
  const ws = await e2e.workspace()
  const mp = path.join(ws.parent, 'share')
  const sidecar = await e2e.mount([{ mount_point: mp, azure_url: url, raw_key: KEY.toString('hex'), verity }], { args: ['--allow-raw-key'] })
  for (const [rel, content] of Object.entries(FILES)) t.true((await readFromChild(path.join(mp, rel))).equals(content), rel)
  t.is(await stopSidecar(sidecar), 0)
}

test.serial('encfs pack --verity appends a tree that veritysetup verify accepts; inspect shows it; verify checks it; upload prints the configuration; it mounts', async (t) => {
  const { image, out, verity } = await pack('appended.img', ['--verity'])
  t.regex(out, /dm-verity root hash: [0-9a-f]{64}\n/)
  const size = (await stat(image)).size
  t.is(verity.hash_offset! % 4096, 0)
  t.true(verity.hash_offset! < size)
  const vs = await veritysetupVerify(image, image, Buffer.from(verity.root_hash, 'hex'), { hashOffset: verity.hash_offset!, dataBlocks: verity.hash_offset! / 4096 })
  t.is(vs.code, 0, vs.stderr)

  const inspect = await encfs(['inspect', image, '--json'])
  t.is(inspect.code, 0, inspect.stderr)
  const summary = JSON.parse(inspect.stdout) as {
    payloadBytes: number
    payloadOffset: number
    verity: { rootHash: string; hashOffset: number; dataBlocks: number; algorithm: string }
  }
  t.like(summary.verity, { rootHash: verity.root_hash, hashOffset: verity.hash_offset, dataBlocks: verity.hash_offset! / 4096, algorithm: 'sha256' })
  t.is(summary.payloadOffset + summary.payloadBytes, verity.hash_offset!, 'the LUKS payload ends where the tree starts')
  t.regex((await encfs(['inspect', image])).stdout, /dm-verity superblock.*rootHash: [0-9a-f]{64}/s)

  const ok = await encfs(['verify', image, '--root-hash', verity.root_hash])
  t.is(ok.code, 0, ok.stderr)
  t.regex(ok.stdout, /^verified: all \d+ data blocks/)

  await az.service.getContainerClient('verity').createIfNotExists()
  const up = await encfs(['upload', image, sas('verity', 'appended.img', 'cw')])
  t.is(up.code, 0, up.stderr)
  t.true(up.stdout.includes(`"verity": {"root_hash":"${verity.root_hash}","hash_offset":${verity.hash_offset}}`), up.stdout)
  t.false(up.stdout.includes('sig='), 'no SAS in the output')

  await mountAndRead(t, sas('verity', 'appended.img', 'r'), verity)
})

test.serial('encfs pack --hash-out writes the tree apart (veritysetup verify accepts it); encfs upload --hash-file uploads both and prints hash_url; it mounts', async (t) => {
  const hashOut = path.join(work, 'sep.verity')
  const { image, verity } = await pack('separate.img', ['--verity', '--hash-out', hashOut])
  t.is(verity.hash_url, '<blob URL of the hash tree>')
  const vs = await veritysetupVerify(image, hashOut, Buffer.from(verity.root_hash, 'hex'))
  t.is(vs.code, 0, vs.stderr)
  t.is(await encfs(['inspect', image, '--json']).then((r) => (JSON.parse(r.stdout) as { verity?: unknown }).verity), undefined, 'the image alone carries no tree')
  t.is((await encfs(['verify', image, '--root-hash', verity.root_hash, '--hash', hashOut])).code, 0)

  await az.service.getContainerClient('verity').createIfNotExists()
  const up = await encfs(['upload', image, sas('verity', 'separate.img', 'cw'), '--hash-file', hashOut, '--hash-url', sas('verity', 'separate.img.verity', 'cw')])
  t.is(up.code, 0, up.stderr)
  t.true(up.stdout.includes(`"verity": {"root_hash":"${verity.root_hash}","hash_url":"${az.blobEndpoint}/verity/separate.img.verity"}`), up.stdout)
  t.deepEqual(await az.service.getContainerClient('verity').getBlobClient('separate.img.verity').downloadToBuffer(), await readFile(hashOut))

  await mountAndRead(t, sas('verity', 'separate.img', 'r'), { root_hash: verity.root_hash, hash_url: sas('verity', 'separate.img.verity', 'r') })
})

test.serial('encfs verify lists modified blocks and exits non-zero; a wrong root hash or no tree is one clear line', async (t) => {
  const { image, verity } = await pack('verify-me.img', ['--verity'])
  const bytes = await readFile(image)
  bytes[20 * 1024 * 1024 + 9]! ^= 4
  await writeFile(image, bytes)
  const bad = await encfs(['verify', image, '--root-hash', verity.root_hash])
  t.is(bad.code, 1)
  t.is(bad.stdout, `modified: data block ${(20 * 1024 * 1024) / 4096} (image bytes ${20 * 1024 * 1024}-${20 * 1024 * 1024 + 4095})\n`)
  t.regex(bad.stderr, /^encfs: 1 of \d+ data blocks do not match root hash .*\[VERITY_IMAGE_MODIFIED\]\n$/)
  const wrong = await encfs(['verify', image, '--root-hash', 'ab'.repeat(32)])
  t.regex(wrong.stderr, /^encfs: .*does not match verity\.root_hash .*\[VERITY_ROOT_MISMATCH\]\n$/)
  const none = await encfs(['verify', path.join(work, 'separate.img'), '--root-hash', verity.root_hash])
  t.regex(none.stderr, /no hash tree appended to the image; give it with --hash.*\[VERITY_NO_SUPERBLOCK\]/)
  const malformed = await encfs(['verify', image, '--root-hash', 'xyz'])
  t.regex(malformed.stderr, /--root-hash must be 64 hex digits.*\[VERITY_BAD_ROOT_HASH\]/)
})
