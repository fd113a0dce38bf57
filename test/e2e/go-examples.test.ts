// What Go runs, run unchanged by remotefs: Go's example EncfsSideCarArgs (examples/encfs, with its
// placeholder salt and kty left as they are, for an oct key), mount points whose parents do not
// exist yet, an http:// SAS URL, a certcache type in another letter case, an empty filesystem
// list, and SkrSideCarArgs in the same container. Simulated SNP with the MAA, Key Vault and IMDS
// emulators, Azurite, real images and mounts.
import test from 'ava'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { randomBytes } from 'node:crypto'
import { readFile, stat } from 'node:fs/promises'
import path from 'node:path'
import { E2eFixture, freePort, leftovers, readFromChild, stopSidecar, waitForLog, waitReady, type TestImage } from '../helpers/e2e.js'
import type { SkrStack } from '../helpers/skr-stack.js'
import type { ImdsEmulator } from '../../src/emulators/imds/server.js'
import { vector } from '../helpers/vectors.js'

const exec = promisify(execFile)
const e2e = new E2eFixture(test)
let s: SkrStack
let imds: ImdsEmulator
let img: TestImage
const octKey = randomBytes(32)

test.before(async () => {
  s = await e2e.skrStack()
  imds = await e2e.imds(s)
  await s.importKey('EncfsKey', octKey)
  img = await e2e.image({ key: octKey, fsSizeMiB: 8, files: { 'hello.txt': 'from the Go example configuration\n' } })
})

const podEnv = () => ({ ...s.podEnv({ imdsUrl: imds.url }), SkrSideCarArgs: '' })
const simulated = () => ['--attestation', 'simulated', '--simulated-state', `${s.dir}/snp`]

test.serial(
  "Go's example configuration with an oct key mounts unchanged: placeholder salt and kty, /mnt/remote not there yet, an http:// SAS URL, certcache type in lower case",
  async (t) => {
    const { sasUrl } = await e2e.upload(img.image, { kind: 'block' })
    // The blob over plain http, at an address that is not loopback by name (0.0.0.0 reaches Azurite's 127.0.0.1 on Linux).
    const httpUrl = sasUrl.replace(/^http:\/\/127\.0\.0\.1:/, 'http://0.0.0.0:')
    t.not(httpUrl, sasUrl)
    const ws = await e2e.tempDir()
    const mountPoint = path.join(ws, 'mnt', 'remote', 'share')
    // examples/encfs/encfs-sidecar-args.json as Go ships it; only what names this deployment filled in.
    const example = (await readFile(vector('config', 'encfs-sidecar-args.template.json'), 'utf8'))
      .replace('/mnt/remote/share', mountPoint)
      .replace('<azure-blob-storage-url>', httpUrl)
      .replace('"azure_url_private": true', '"azure_url_private": false')
      .replace('"read_write": true', '"read_write": false')
      .replace('<key-vault-akv-key-identifier>', 'EncfsKey')
      .replace('<authority-of-key-imported-to-akv>', s.maa.endpoint)
      .replace('<key-vault-akv-endpoint>', s.akv.endpoint)
    t.regex(example, /<salt-for-key-derivation-valid-only-for-RSA-HSM-keys>/)
    t.regex(example, /<key-type-of-key-imported-to-akv>/)
    const config = JSON.parse(example) as Record<string, unknown>
    config.azure_info = { identity: { client_id: 'pod-identity' }, certcache: { endpoint_type: 'localthim', endpoint: '169.254.169.254/metadata/THIM/amd/certification' } }
    const sidecar = await e2e.sidecar(Buffer.from(JSON.stringify(config)).toString('base64'), { args: simulated(), env: podEnv() })
    await waitReady(sidecar, [mountPoint])
    t.is((await readFromChild(path.join(mountPoint, 'hello.txt'))).toString(), 'from the Go example configuration\n')
    for (const dir of [path.join(ws, 'mnt'), path.join(ws, 'mnt', 'remote')]) t.is((await stat(dir)).mode & 0o777, 0o755, `${dir} made as Go's MkdirAll makes it`)
    const log = await sidecar.log()
    t.regex(log, /azure_filesystems\[0\]\.key_derivation\.salt: is not hex/)
    t.regex(log, /azure_filesystems\[0\]\.azure_url: is plain http to 0\.0\.0\.0:\d+: the image \(and a SAS signature, if the URL has one\) travels unencrypted/)
    t.regex(log, /azure_info\.certcache\.endpoint_type: \\"localthim\\" is read as \\"LocalTHIM\\"/)
    t.false(log.includes(new URL(sasUrl).searchParams.get('sig')!), 'no SAS signature in the log')
    t.is(await stopSidecar(sidecar), 0)
    await t.throwsAsync(stat(path.join(ws, 'mnt')), { code: 'ENOENT' }, 'the parents remotefs made are gone with it')
    t.deepEqual(await leftovers(sidecar.runtimeDir, [path.join(ws, 'mnt', 'remote', '.filesystem-0')]), [])
  },
)

test.serial('an empty filesystem list, as Go runs it: nothing mounted, remotefs stays up (the API too, if asked for) until SIGTERM', async (t) => {
  const port = await freePort()
  const sidecar = await e2e.sidecar(Buffer.from('{"azure_filesystems":[]}').toString('base64'), { args: ['-port', String(port)], env: podEnv() })
  await waitForLog(sidecar, /"msg":"ready: 0 filesystem\(s\) mounted; API on localhost:\d+"/)
  t.regex(await sidecar.log(), /azure_filesystems is empty: nothing to mount; remotefs stays up/)
  const st = await fetch(`http://127.0.0.1:${port}/status`)
  t.is(st.status, 200)
  t.is(sidecar.child.exitCode, null, 'still running')
  t.is(await stopSidecar(sidecar), 0)
})

test.serial(
  "SkrSideCarArgs in the encfs container configures the API it serves: maaconfig.user_agent on every MAA request (the filesystem's release and /attest/maa); unused and said so when the API is off",
  async (t) => {
    const { sasUrl } = await e2e.upload(img.image, { kind: 'block' })
    const ws = await e2e.workspace()
    const mp = path.join(ws.parent, 'share')
    const port = await freePort()
    const skr = Buffer.from(JSON.stringify({ maaconfig: { user_agent: 'contoso-orders' }, identity: { client_id: 'pod-identity' } })).toString('base64')
    const fs = [{ mount_point: mp, azure_url: sasUrl, key: { kid: 'EncfsKey', authority: { endpoint: s.maa.endpoint }, akv: { endpoint: s.akv.endpoint } } }]
    const config = { azure_info: { identity: { client_id: 'pod-identity' } }, azure_filesystems: fs }
    const b64 = Buffer.from(JSON.stringify(config)).toString('base64')
    const attestsBefore = s.maa.attestCount
    const sidecar = await e2e.sidecar(b64, { args: [...simulated(), '-port', String(port)], env: { ...podEnv(), SkrSideCarArgs: skr } })
    await waitReady(sidecar, [mp])
    t.true(s.maa.attestCount > attestsBefore)
    t.is(s.maa.lastUserAgent, 'contoso-orders', "the filesystem's key release sent SkrSideCarArgs' User-Agent")
    const runtime = Buffer.from('{"nonce":"7"}').toString('base64')
    const curl = await exec('curl', [
      '--silent',
      '--fail-with-body',
      '-XPOST',
      `http://localhost:${port}/attest/maa`,
      '-d',
      `{"runtime_data":"${runtime}","maa_endpoint":"${s.maa.endpoint}"}`,
    ])
    t.truthy((JSON.parse(curl.stdout) as { token?: string }).token, curl.stdout)
    t.is(s.maa.lastUserAgent, 'contoso-orders')
    t.regex(await sidecar.log(), /Using provided string contoso-orders as User-Agent for request to MAA/)
    t.is(await stopSidecar(sidecar), 0)

    const off = await e2e.sidecar(b64, { args: simulated(), env: { ...podEnv(), SkrSideCarArgs: skr } })
    await waitReady(off, [mp])
    t.regex(await off.log(), /SkrSideCarArgs is set, but it configures only the attestation and key release API and the keyprovider gRPC service, and neither is served/)
    t.regex(await off.log(), /"msg":"ready: 1 filesystem\(s\) mounted; API off \(not asked for: set -port\/Port or EncfsApi=true\)"/)
    t.is(await stopSidecar(off), 0)
  },
)
