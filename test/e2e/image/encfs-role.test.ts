// The image in the encfs role as a pod runs it: the sidecar (privileged, EncfsSideCarArgs only)
// and an unprivileged app container share a volume (sidecar rshared / Bidirectional, app rslave /
// HostToContainer); the app reads the plaintext, writes to a read-write filesystem, holds a file
// while the pod is stopped. Simulated SNP, the MAA / Key Vault / IMDS emulators, Azurite.
import test, { type ExecutionContext } from 'ava'
import { execFile } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { readFile, writeFile } from 'node:fs/promises'
import { promisify } from 'node:util'
import path from 'node:path'
import { BlobClient } from '@azure/storage-blob'
import { E2eFixture, waitUntil, type TestImage } from '../../helpers/e2e.js'
import { decryptWithCryptsetup } from '../../helpers/images.js'
import { buildImage, leftoverContainers, removeContainer, runContainer, IMAGE, type Container } from '../../helpers/podman.js'
import { hostHoldings, hostLeftovers, podPlatform, sharedVolume, type PodPlatform } from '../../helpers/pod.js'

const exec = promisify(execFile)
const e2e = new E2eFixture(test)
let pod: PodPlatform
let readOnly: { img: TestImage; sasUrl: string }
const data = randomBytes(8 << 20)
const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest('hex')

test.before(async () => {
  const built = await buildImage((line) => console.log(`image: ${line}`))
  console.log(`image: ${IMAGE} built in ${(built.buildMs / 1000).toFixed(1)} s, size ${(built.sizeBytes / 1e6).toFixed(0)} MB`)
  pod = await podPlatform(e2e)
  const img = await e2e.image({ fsSizeMiB: 24, files: { 'hello.txt': 'hello from the encrypted blob\n', 'docs/readme.md': '# read by the app container\n', 'data.bin': data } })
  await pod.stack.importKey('ro-key', img.key)
  readOnly = { img, sasUrl: (await e2e.upload(img.image, { kind: 'block' })).sasUrl }
})

test.after.always('no container of this file is left', async () => {
  const left = await leftoverContainers()
  if (left.length > 0) throw new Error(`containers left behind: ${left.join(', ')}`)
})

/** EncfsSideCarArgs for one filesystem at /mnt/remote/share whose key the pod's identity releases. */
function sidecarArgs(url: string, kid: string, readWrite = false): string {
  const { maa, akv } = pod.stack
  const fs = { mount_point: '/mnt/remote/share', azure_url: url, read_write: readWrite, key: { kid, authority: { endpoint: maa.endpoint }, akv: { endpoint: akv.endpoint } } }
  return Buffer.from(JSON.stringify({ azure_info: { identity: { client_id: 'pod-identity' } }, azure_filesystems: [fs] })).toString('base64')
}

/** The app container: unprivileged, the shared volume at /mnt/remote with HostToContainer propagation. */
async function startApp(t: ExecutionContext, volume: string): Promise<Container> {
  const app = await runContainer('app', { entrypoint: 'sleep', args: ['infinity'], volumes: [`${volume}:/mnt/remote:rslave`] })
  t.teardown(() => removeContainer(app))
  return app
}

/** The sidecar, started as the deployment starts it; resolves once it logged `ready`, with the time since `podman run`. */
async function startSidecar(t: ExecutionContext, volume: string, b64: string, entrypoint?: string): Promise<{ sidecar: Container; readyMs: number }> {
  const start = Date.now()
  const sidecar = await runContainer('sidecar', {
    privileged: true,
    // LogLevel as Go's examples set it (the default, warning, would not show Go's info lines).
    env: { ...pod.env, EncfsSideCarArgs: b64, LogLevel: 'info' },
    volumes: [...pod.volumes, `${volume}:/mnt/remote:rshared`],
    ...(entrypoint ? { entrypoint } : {}),
  })
  // Removed when the test ends, even failed: a sidecar left running would hold its mounts into the next test.
  t.teardown(() => removeContainer(sidecar))
  await sidecar.waitForLog(/"msg":"ready:/)
  const readyMs = Date.now() - start
  t.regex(await sidecar.logs(), /"msg":"Starting \/bin\/remotefs\.\.\."/, "Go's first line, which runbooks look for")
  t.log(`podman run to ready: ${readyMs} ms`)
  console.log(`image: podman run to ready (${entrypoint ?? 'tini -- /encfs.sh'}): ${readyMs} ms`)
  return { sidecar, readyMs }
}

async function appRead(app: Container, file: string): Promise<string> {
  const r = await app.exec(`cat ${file}`)
  if (r.code !== 0) throw new Error(`the app cannot read ${file}: ${r.stderr}`)
  return r.stdout
}

test.serial('read-only: with command /encfs.sh and EncfsSideCarArgs only, the app container reads the plaintext byte-exact; SIGTERM leaves nothing on the host', async (t) => {
  const volume = await sharedVolume(e2e)
  const app = await startApp(t, volume)
  const { sidecar } = await startSidecar(t, volume, sidecarArgs(readOnly.sasUrl, 'ro-key'), '/encfs.sh')
  const held = await hostHoldings(await sidecar.pid())
  t.true(held.fuseConnections.length >= 1, `the sidecar serves FUSE: ${JSON.stringify(held)}`)
  // The app container was started first: the mount reached it through propagation.
  t.is((await app.exec('readlink /mnt/remote/share')).stdout.trim(), '.filesystem-0')
  t.is(await appRead(app, '/mnt/remote/share/hello.txt'), 'hello from the encrypted blob\n')
  t.is(await appRead(app, '/mnt/remote/share/docs/readme.md'), '# read by the app container\n')
  t.is((await app.exec('sha256sum /mnt/remote/share/data.bin')).stdout.split(' ')[0], sha256(data), 'a random 8 MiB file, byte-exact')
  const write = await app.exec('touch /mnt/remote/share/new.txt')
  t.not(write.code, 0)
  t.regex(write.stderr, /Read-only file system/)
  const log = await sidecar.logs()
  t.false(log.includes(readOnly.img.key.toString('hex')) || log.includes(readOnly.img.key.toString('base64url')), 'the key is not logged')
  const stopped = await sidecar.stop(30)
  t.is(stopped.exitCode, 0, await sidecar.logs())
  t.deepEqual(await hostLeftovers(held, volume), [])
  t.not((await app.exec('ls /mnt/remote/share')).code, 0, 'the mount point is gone for the app too')
})

test.serial('read-write: the app writes and fsyncs; after the sidecar stops, the bytes are in the page blob (read back with cryptsetup)', async (t) => {
  const img = await e2e.image({ fsSizeMiB: 24, files: { 'seed.txt': 'seed\n' } })
  await pod.stack.importKey('rw-key', img.key)
  const blob = await e2e.upload(img.image, { kind: 'page' })
  const volume = await sharedVolume(e2e)
  const app = await startApp(t, volume)
  const { sidecar } = await startSidecar(t, volume, sidecarArgs(blob.sasUrl, 'rw-key', true))
  const held = await hostHoldings(await sidecar.pid())
  const written = randomBytes(3 << 20)
  // The bytes go into the app container through a pipe; it writes and fsyncs them (sync FILE).
  const piped = await app.exec('cat > /mnt/remote/share/app.bin && sync /mnt/remote/share/app.bin', 120_000, written)
  t.is(piped.code, 0, piped.stderr)
  const text = await app.exec("printf 'written by the app\\n' > /mnt/remote/share/app.txt && sync /mnt/remote/share/app.txt && cat /mnt/remote/share/seed.txt")
  t.is(text.code, 0, text.stderr)
  t.is(text.stdout, 'seed\n')
  const stopped = await sidecar.stop(30)
  t.is(stopped.exitCode, 0, await sidecar.logs())
  t.regex(await sidecar.logs(), /flushed \d+ bytes to storage before unmounting|lease released/)
  t.deepEqual(await hostLeftovers(held, volume), [])

  const downloaded = path.join(img.dir, 'downloaded.img')
  await new BlobClient(blob.sasUrl).downloadToFile(downloaded)
  const plain = path.join(img.dir, 'downloaded-plain.img')
  await writeFile(plain, await decryptWithCryptsetup(downloaded, img.keyFile))
  const sbin = { ...process.env, PATH: `${process.env.PATH}:/usr/sbin:/sbin` }
  await t.notThrowsAsync(exec('e2fsck', ['-fn', plain], { env: sbin }), 'e2fsck -fn finds the filesystem clean')
  t.is((await exec('debugfs', ['-R', 'cat app.txt', plain], { env: sbin })).stdout, 'written by the app\n')
  const dumped = path.join(img.dir, 'app.bin')
  await exec('debugfs', ['-R', `dump app.bin ${dumped}`, plain], { env: sbin })
  t.is(sha256(await readFile(dumped)), sha256(written), '3 MiB written by the app, byte-exact in the blob')
})

const termination = test.macro({
  async exec(t, entrypoint: string | undefined) {
    const volume = await sharedVolume(e2e)
    const app = await startApp(t, volume)
    const { sidecar } = await startSidecar(t, volume, sidecarArgs(readOnly.sasUrl, 'ro-key'), entrypoint)
    const held = await hostHoldings(await sidecar.pid())
    // The app opens a file and keeps it open; once told, it reads a part of it it never read.
    const holder = [
      'exec 3< /mnt/remote/share/data.bin',
      'head -c 4096 <&3 > /dev/null && echo held > /tmp/held',
      'while [ ! -e /tmp/go ]; do sleep 0.1; done',
      'if dd bs=65536 count=1 skip=96 <&3 > /dev/null 2> /tmp/err; then echo read > /tmp/result; else echo "failed: $(cat /tmp/err)" > /tmp/result; fi',
    ].join('; ')
    t.is((await app.exec(`(${holder}) > /dev/null 2>&1 & sleep 0.1`)).code, 0)
    await waitUntil('the app to hold the file', async () => (await app.exec('cat /tmp/held')).stdout.trim() === 'held', { timeoutMs: 30_000 })

    const stopped = await sidecar.stop(30)
    t.log(`podman stop -t 30: exit ${stopped.exitCode} after ${stopped.ms} ms`)
    t.is(stopped.exitCode, 0, `the sidecar exits 0:\n${await sidecar.logs()}`)
    t.true(stopped.ms < 15_000, `the sidecar exits within 15 s of SIGTERM (took ${stopped.ms} ms)`)
    t.deepEqual(await hostLeftovers(held, volume), [], 'no mount, loop device or FUSE connection of the sidecar is left on the host')

    await app.exec('touch /tmp/go')
    let result = ''
    await waitUntil(
      "the app's next read to return",
      async () => {
        result = (await app.exec('cat /tmp/result 2>/dev/null')).stdout.trim()
        return result !== ''
      },
      { timeoutMs: 30_000, details: () => 'the read hangs' },
    )
    t.regex(result, /^failed: /, 'the read fails with an error instead of returning data')
  },
  title: (_title, entrypoint: string | undefined) =>
    `termination as Kubernetes does it (${entrypoint ? `command ${entrypoint}, tini not PID 1` : 'the image entry point, tini'}): the app holds a file, podman stop -t 30; the sidecar exits 0 within 15 s, the app's next read fails, the host keeps nothing`,
})

test.serial(termination, undefined)
test.serial(termination, '/encfs.sh')
