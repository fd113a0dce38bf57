// Storage (or a proxy in front of it) answering ranged reads with other bytes: another range
// under its own Content-Range, or a 200 without one. Through both HTTP clients and both FUSE
// backends, an application reads either the image's bytes or EIO, never other bytes; the
// mismatch is logged (docs/storage-faults.md).
import test from 'ava'
import { createHash, randomBytes } from 'node:crypto'
import { execFile } from 'node:child_process'
import path from 'node:path'
import { promisify } from 'node:util'
import { E2eFixture, stopSidecar, type TestImage } from '../helpers/e2e.js'
import { HOSTILE_FAULTS, startFaultProxy } from '../helpers/fault-proxy.js'

const exec = promisify(execFile)
const e2e = new E2eFixture(test)
const files: Record<string, Buffer> = { 'first.bin': randomBytes(3 * 1024 * 1024), 'second.bin': randomBytes(3 * 1024 * 1024) }
const cache = { block_size_kib: 256, memory_mib: 2, readahead_blocks: 1 }
let img: TestImage

test.before(async () => {
  img = await e2e.image({ fsSizeMiB: 16, files })
})

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex')

async function readHash(file: string): Promise<{ sum?: string; error?: string }> {
  try {
    return { sum: (await exec('sha256sum', [file])).stdout.split(' ')[0] }
  } catch (err) {
    return { error: (err as { stderr?: string }).stderr ?? String(err) }
  }
}

const ranged = (req: { method?: string; headers: Record<string, unknown> }) => req.method === 'GET' && req.headers['x-ms-range'] !== undefined

for (const http of ['native', 'node'] as const) {
  for (const fuse of ['libfuse3', 'libfuse2'] as const) {
    test.serial(`${http} client, ${fuse}: answers of other ranges are refused and retried; when every answer is wrong, reads fail with EIO, never other bytes`, async (t) => {
      const { sasUrl } = await e2e.upload(img.image, { kind: 'block' })
      const proxy = await startFaultProxy({ port: Number(new URL(sasUrl).port) })
      e2e.defer(() => proxy.stop())
      // One ranged read in three answered wrongly, in turn shifted by 64 KiB and as a 200.
      proxy.setPlan({ every: 3, faults: HOSTILE_FAULTS, applies: ranged })
      const ws = await e2e.workspace()
      const mp = path.join(ws.parent, 'hostile')
      const sidecar = await e2e.mount([{ mount_point: mp, azure_url: proxy.via(sasUrl), raw_key: img.key.toString('hex'), cache }], {
        args: ['--allow-raw-key', '--http', http, '--fuse', fuse],
        readyMs: 120_000,
      })
      const first = await readHash(path.join(mp, 'first.bin'))
      t.is(first.sum, sha(files['first.bin']!), first.error)
      t.true(proxy.counts['shifted-range'] > 0 && proxy.counts['200-for-206'] > 0, JSON.stringify(proxy.counts))
      const log = await sidecar.log()
      t.regex(log, /the answer is 206 with Content-Range/, 'a shifted answer is logged as such')
      t.regex(log, /a whole blob, not the range/, 'a 200 is logged as such')
      // Now every ranged read is answered wrongly: a file not read yet cannot be read, and fails.
      proxy.setPlan({ every: 1, faults: HOSTILE_FAULTS, applies: ranged })
      const second = await readHash(path.join(mp, 'second.bin'))
      t.is(second.sum, undefined, 'no checksum: the read failed')
      t.regex(second.error ?? '', /Input\/output error/)
      t.regex(await sidecar.log(), /STORAGE_BAD_ANSWER/)
      t.is(await stopSidecar(sidecar), 0)
    })
  }
}
