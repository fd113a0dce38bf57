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

async function pack(
  name: string,
  extra: string[],
): Promise<{ image: string; out: string; verity: { root_hash: string; hash_offset?: number; hash_url?: string; data_blocks: number } }> {
  const image = path.join(work, name)
  const r = await encfs(['pack', '--from', path.join(work, 'files'), '--out', image, '--key-file', path.join(work, 'key.bin'), '--iterations', '1000', ...extra])
  if (r.code !== 0) throw new Error(r.stderr)
  const json = /"verity": (\{.*\})/.exec(r.stdout)?.[1]
  if (!json) throw new Error(`no verity JSON in: ${r.stdout}`)
  return { image, out: r.stdout, verity: JSON.parse(json) as { root_hash: string; hash_offset?: number; data_blocks: number } }
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
  t.is(verity.data_blocks, verity.hash_offset! / 4096, 'pack prints the data-block count to pin')
  t.true(up.stdout.includes(`"verity": {"root_hash":"${verity.root_hash}","hash_offset":${verity.hash_offset},"data_blocks":${verity.data_blocks}}`), up.stdout)
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
  t.true(
    up.stdout.includes(`"verity": {"root_hash":"${verity.root_hash}","hash_url":"${az.blobEndpoint}/verity/separate.img.verity","data_blocks":${verity.data_blocks}}`),
    up.stdout,
  )
  t.deepEqual(await az.service.getContainerClient('verity').getBlobClient('separate.img.verity').downloadToBuffer(), await readFile(hashOut))

  await mountAndRead(t, sas('verity', 'separate.img', 'r'), { root_hash: verity.root_hash, hash_url: sas('verity', 'separate.img.verity', 'r'), data_blocks: verity.data_blocks })
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

/** A packed image's tree, cut up: the superblock's block, the top hash block and level 0 (whose hashes the top block holds). */
async function treeOf(image: string, hashOffset: number) {
  const bytes = await readFile(image)
  const sb = bytes.subarray(hashOffset, hashOffset + 4096)
  const dataBlocks = Number(sb.readBigUInt64LE(72))
  const level0Blocks = Math.ceil(dataBlocks / 128)
  if (level0Blocks > 128) throw new Error('the forgery below assumes a two-level tree')
  return { sb, top: bytes.subarray(hashOffset + 4096, hashOffset + 8192), level0: bytes.subarray(hashOffset + 8192, hashOffset + 8192 + level0Blocks * 4096), level0Blocks }
}

/** The real superblock claiming `blocks` data blocks: same salt, so the real root hash still matches the top of what it describes. */
function claiming(sb: Buffer, blocks: number): Buffer {
  const forged = Buffer.from(sb)
  forged.writeBigUInt64LE(BigInt(blocks), 72)
  return forged
}

test.serial('forged superblocks presenting the tree itself as the data are refused by encfs verify and at mount, before any LUKS parsing', async (t) => {
  const { image, verity } = await pack('forge-me.img', ['--verity'])
  const hashOffset = verity.hash_offset!
  const { sb, top, level0, level0Blocks } = await treeOf(image, hashOffset)
  // The image blob rewritten with the pinned hash_offset kept: level 0 presented as the data, then the top block alone.
  const asLevel0 = path.join(work, 'forged-level0.img')
  await writeFile(asLevel0, Buffer.concat([level0, Buffer.alloc(hashOffset - level0.length), claiming(sb, level0Blocks), top]))
  const asTop = path.join(work, 'forged-top.img')
  await writeFile(asTop, Buffer.concat([top, Buffer.alloc(hashOffset - 4096), claiming(sb, 1)]))
  for (const forged of [asLevel0, asTop]) {
    const r = await encfs(['verify', forged, '--root-hash', verity.root_hash, '--hash-offset', String(hashOffset)])
    t.is(r.code, 1, `${forged}: ${r.stdout}`)
    t.is(r.stdout, '', 'nothing claims to be verified')
    t.regex(r.stderr, /the superblock covers \d+ data blocks \(\d+ bytes\), but the hash area starts at byte \d+.*\[VERITY_DATA_SIZE\]/)
    const ws = await e2e.workspace()
    const run = await e2e.runToEnd(
      [{ mount_point: path.join(ws.parent, 'x'), azure_url: `file://${forged}`, raw_key: KEY.toString('hex'), verity: { root_hash: verity.root_hash, hash_offset: hashOffset } }],
      { args: ['--allow-raw-key'] },
    )
    t.is(run.code, 1)
    t.regex(run.output, /\[VERITY_DATA_SIZE\]/)
    t.notRegex(run.output, /LUKS_NOT_LUKS/)
  }
  // Both blobs of a separate tree replaced: the image size agrees with the forged superblock, the pinned data_blocks does not.
  const data = path.join(work, 'forged-sep.img')
  const hash = path.join(work, 'forged-sep.verity')
  await writeFile(data, level0)
  await writeFile(hash, Buffer.concat([claiming(sb, level0Blocks), top]))
  const pinned = await encfs(['verify', data, '--root-hash', verity.root_hash, '--hash', hash, '--data-blocks', String(verity.data_blocks)])
  t.regex(pinned.stderr, new RegExp(`covers ${level0Blocks} data blocks, but verity\\.data_blocks pins ${verity.data_blocks}.*\\[VERITY_DATA_SIZE\\]`))
  const ws = await e2e.workspace()
  const run = await e2e.runToEnd(
    [
      {
        mount_point: path.join(ws.parent, 'y'),
        azure_url: `file://${data}`,
        raw_key: KEY.toString('hex'),
        verity: { root_hash: verity.root_hash, hash_url: hash, data_blocks: verity.data_blocks },
      },
    ],
    { args: ['--allow-raw-key'] },
  )
  t.is(run.code, 1)
  t.regex(run.output, /verity\.data_blocks pins .*\[VERITY_DATA_SIZE\]/)
})
