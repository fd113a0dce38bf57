// The keyprovider as a user runs it: `encfs wrap` offline, the container entry point in the skr
// role (encfs serve -server_type grpc) and remotefs --grpc-port next to a mount, each answering a
// grpc-js client over TCP; simulated SNP with the MAA, Key Vault and IMDS emulators.
import test from 'ava'
import { spawn, execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { createServer } from 'node:net'
import { generateKeyPairSync, randomBytes } from 'node:crypto'
import { writeFile, readFile, mkdir, rm, access } from 'node:fs/promises'
import path from 'node:path'
import { status } from '@grpc/grpc-js'
import type { SkrStack } from '../helpers/skr-stack.js'
import { startImdsEmulator, type ImdsEmulator } from '../../src/emulators/imds/server.js'
import { E2eFixture, ENCFS_JS, REMOTEFS_JS, REMOTEFS_NODE_FLAGS, freePort, sidecarArgs, stopSidecar, waitReady, waitUntil, readFromChild, type TestImage } from '../helpers/e2e.js'
import { keyProviderClients, call, refusal, FIELD, unwrapInput, unwrappedSecret } from '../helpers/keyprovider-client.js'
import { PACKAGES } from '../../src/keyprovider-grpc/server.js'

const exec = promisify(execFile)
const REPO = path.resolve(path.dirname(ENCFS_JS), '..')
const e2e = new E2eFixture(test)
let s: SkrStack
let imds: ImdsEmulator
let dir: string
let keyPath: string
let img: TestImage
const rsa = generateKeyPairSync('rsa', { modulusLength: 3072 })

test.before(async () => {
  s = await e2e.skrStack()
  imds = await startImdsEmulator(s.authority)
  e2e.defer(() => imds.stop())
  dir = await e2e.tempDir('encfs-kp-')
  await s.importKey('image-key', { ...rsa.privateKey.export({ format: 'jwk' }), kty: 'RSA-HSM' })
  // What the Go set-up script leaves next to a key: the public key and <key>-info.json.
  keyPath = path.join(dir, 'keys', 'image-key')
  await mkdir(path.dirname(keyPath))
  await writeFile(`${keyPath}-pub.pem`, rsa.publicKey.export({ format: 'pem', type: 'spki' }))
  await writeFile(`${keyPath}-info.json`, JSON.stringify({ public_key_path: `${keyPath}-pub.pem`, kms_endpoint: s.akv.endpoint, attester_endpoint: s.maa.endpoint }))
  img = await e2e.image({ fsSizeMiB: 8, files: { 'app.txt': 'mounted next to the keyprovider\n' } })
})

/** What a pod gives the sidecar: the emulators' CA, its security context, an identity endpoint. */
const podEnv = (): Record<string, string> => ({ ...s.podEnv({ imdsUrl: imds.url }), EncfsAttestation: 'simulated' })

function run(cmd: string, args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return exec(cmd, args, { env: { ...process.env, ...env }, timeout: 60_000 }).then(
    ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
    (err: { code?: number; stdout?: string; stderr?: string }) => ({ code: err.code ?? -1, stdout: err.stdout ?? '', stderr: err.stderr ?? '' }),
  )
}

/** Runs the entry point like the container does and resolves once the process logged readiness. */
async function startEntryPoint(script: string, env: Record<string, string>, logFile: string) {
  const child = spawn('sh', [path.join(REPO, script)], {
    env: { ...process.env, ENCFS_HOME: REPO, LogFile: logFile, LogLevel: 'info', ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  })
  let stderr = ''
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString()
  })
  const exited = new Promise<number | null>((resolve) => child.on('exit', resolve))
  e2e.defer(() => child.kill('SIGKILL'))
  const log = () => readFile(logFile, 'utf8').catch(() => '')
  await waitUntil(`${script} to be ready`, async () => (await log()).includes('"msg":"ready:'), { exited, timeoutMs: 30_000, details: async () => `${stderr}\n${await log()}` })
  return { child, exited, log }
}

test.serial('encfs wrap makes the annotation offline, as skr -infile -keypath -outfile, and refuses cleanly', async (t) => {
  const secret = path.join(dir, 'secret.bin')
  await writeFile(secret, 'Oceans are full of water\r\nHorses have 4 legs\r\n')
  const out = path.join(dir, 'wrapped')
  const r = await run(process.execPath, [ENCFS_JS, 'wrap', '-infile', secret, '-keypath', keyPath, '-outfile', out])
  t.is(r.code, 0, r.stderr)
  t.regex(r.stderr, /wrote the annotation for key image-key/)
  const text = await readFile(out, 'utf8')
  t.regex(text, /^[A-Za-z0-9+/]+={0,2}$/, 'standard base64, no newline')
  t.like(JSON.parse(Buffer.from(text, 'base64').toString()), { kid: 'image-key', wrap_type: 'rsa_3072', kms_endpoint: s.akv.endpoint, attester_endpoint: s.maa.endpoint })

  const missing = await run(process.execPath, [ENCFS_JS, 'wrap', '--infile', secret, '--keypath', path.join(dir, 'keys', 'other'), '--outfile', path.join(dir, 'not-written')])
  t.is(missing.code, 1)
  t.regex(missing.stderr, /^encfs: cannot read the key info file .*other-info\.json \(ENOENT\).* \[KEYPROVIDER_KEY_INFO\]\n$/)
  await t.throwsAsync(access(path.join(dir, 'not-written')), undefined, 'nothing written')

  const asDir = await run(process.execPath, [ENCFS_JS, 'wrap', '--infile', secret, '--keypath', keyPath, '--outfile', dir])
  t.is(asDir.code, 1)
  t.regex(asDir.stderr, /^encfs: cannot write the annotation to -outfile .* \(it is a directory; name the file to write\) \[KEYPROVIDER_OUTFILE\]\n$/)
  // Unbounded inputs: /dev/zero as the file to wrap, or as the public key, is refused at once (it grew to GBs).
  const zeroIn = await run(process.execPath, [ENCFS_JS, 'wrap', '--infile', '/dev/zero', '--keypath', keyPath, '--outfile', path.join(dir, 'not-written')])
  t.regex(zeroIn.stderr, /cannot read the file to wrap \/dev\/zero \(not a regular file \(a device or socket\)\) \[KEYPROVIDER_INFILE\]/)
  const zeroKey = path.join(dir, 'keys', 'zero')
  await writeFile(`${zeroKey}-info.json`, JSON.stringify({ public_key_path: '/dev/zero', kms_endpoint: s.akv.endpoint, attester_endpoint: s.maa.endpoint }))
  const started = Date.now()
  const zeroPub = await run(process.execPath, [ENCFS_JS, 'wrap', '--infile', secret, '--keypath', zeroKey, '--outfile', path.join(dir, 'not-written')])
  t.true(Date.now() - started < 20_000, `refused after ${Date.now() - started} ms`)
  t.regex(zeroPub.stderr, /cannot read the public key \/dev\/zero \(public_key_path; not a regular file .*\[KEYPROVIDER_KEY_INFO\]/)
  await t.throwsAsync(access(path.join(dir, 'not-written')), undefined, 'nothing written')
})

test.serial('the entry point picks the role from the environment (dry run)', async (t) => {
  const dry = async (env: Record<string, string>, script = 'encfs.sh', args: string[] = []) => {
    const r = await run('sh', [path.join(REPO, script), ...args], {
      ENCFS_HOME: '/opt/encfs',
      ENCFS_DRY_RUN: '1',
      EncfsSideCarArgs: '',
      SkrSideCarArgs: '',
      ServerType: '',
      Port: '',
      LogFile: '',
      LogLevel: '',
      EncfsRole: '',
      TestingMismatchedTCB: '',
      ...env,
    })
    t.is(r.code, 0, r.stderr)
    // remotefs runs by its own first line (its Node.js flags); the other roles through node.
    const lines = r.stdout.trim().split('\n')
    return (lines[0] === 'node' ? lines.slice(1) : lines).join(' ')
  }
  // The configuration stays in the environment (never -base64 on the command line, readable in /proc).
  t.is(await dry({ EncfsSideCarArgs: 'e30=', LogLevel: 'info' }), '/opt/encfs/bin/remotefs.js -loglevel info')
  t.deepEqual(REMOTEFS_NODE_FLAGS, ['--max-semi-space-size=2'], "remotefs's first line gives Node.js its flags")
  const direct = await run(REMOTEFS_JS, ['--help'], {})
  t.is(direct.code, 0, `bin/remotefs.js runs by its own first line: ${direct.stderr}`)
  t.regex(direct.stdout, /Mounts the encrypted filesystems/)
  t.is(await dry({ SkrSideCarArgs: 'e30=', Port: '8080' }), '/opt/encfs/bin/encfs.js serve -base64 e30= -port 8080')
  t.is(
    await dry({ ServerType: 'grpc', Port: '50000', LogLevel: 'debug', LogFile: '/tmp/skr.log' }),
    '/opt/encfs/bin/encfs.js serve -port 50000 -logfile /tmp/skr.log -loglevel debug -server_type grpc',
  )
  t.is(await dry({ EncfsSideCarArgs: 'e30=', SkrSideCarArgs: 'e30=' }), '/opt/encfs/bin/remotefs.js', 'encfs wins when both are set')
  t.is(await dry({ EncfsRole: 'skr' }), '/opt/encfs/bin/encfs.js serve')
  t.is(await dry({}), '/opt/encfs/bin/encfs.js serve', "no configuration at all: the skr role, as Go's skr image started with no environment")
  t.is(await dry({}, 'encfs.sh', ['e30=']), '/opt/encfs/bin/remotefs.js', 'a positional configuration: the encfs role')
  t.is(await dry({}, 'encfs.sh', ['-base64', 'e30=']), '/opt/encfs/bin/remotefs.js -base64 e30=', 'remotefs flags: the encfs role')
  t.is(await dry({}, 'skr.sh'), '/opt/encfs/bin/encfs.js serve')
  t.is(await dry({ TestingMismatchedTCB: 'true' }, 'skr.sh'), '/opt/encfs/bin/encfs.js serve -allowTestingMismatchedTCB=true')
  const bad = await run('sh', [path.join(REPO, 'encfs.sh')], { EncfsRole: 'both', ENCFS_DRY_RUN: '1' })
  t.is(bad.code, 2)
  t.regex(bad.stderr, /EncfsRole must be encfs, skr or aasp, got "both"/)
})

test.serial('the skr role with ServerType=grpc serves both keyprovider paths: UnWrapKey returns what encfs wrap wrapped', async (t) => {
  const port = await freePort()
  const logFile = path.join(dir, 'skr.log')
  const skrConfig = Buffer.from(JSON.stringify({ identity: { client_id: 'pod-identity' } })).toString('base64')
  const sidecar = await startEntryPoint(
    'encfs.sh',
    { ...podEnv(), SkrSideCarArgs: skrConfig, ServerType: 'grpc', Port: String(port), EncfsSimulatedState: `${s.dir}/snp` },
    logFile,
  )
  const clients = keyProviderClients(`localhost:${port}`)
  t.teardown(() => clients.close())
  const secret = randomBytes(48)
  await writeFile(path.join(dir, 'layer-key'), secret)
  const wrapped = path.join(dir, 'layer-key.wrapped')
  t.is((await run(process.execPath, [ENCFS_JS, 'wrap', '--infile', path.join(dir, 'layer-key'), '--keypath', keyPath, '--outfile', wrapped])).code, 0)
  const annotation = Buffer.from(await readFile(wrapped, 'utf8'), 'base64')
  for (const pkg of PACKAGES) {
    t.deepEqual(await call(clients[pkg], 'SayHello', { name: pkg }), { message: `Hello ${pkg}` })
    const res = await call(clients[pkg], 'UnWrapKey', { [FIELD[pkg].in]: unwrapInput(annotation) })
    t.deepEqual(unwrappedSecret(res[FIELD[pkg].out]), secret, `${pkg}: the secret comes back byte-identical`)
  }
  const log = await sidecar.log()
  t.regex(log, /keyprovider gRPC service listening/)
  t.false(log.includes(secret.toString('base64')), 'the secret is not logged')
  sidecar.child.kill('SIGTERM')
  t.is(await sidecar.exited, 0, 'SIGTERM reached the server through the scripts')
})

test.serial('encfs serve -server_type grpc on a port in use says so and exits non-zero', async (t) => {
  const holder = createServer()
  await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve))
  t.teardown(() => holder.close())
  const port = (holder.address() as { port: number }).port
  const r = await run(process.execPath, [ENCFS_JS, 'serve', '-server_type', 'grpc', '-port', String(port), '--attestation', 'simulated'])
  t.is(r.code, 1)
  t.regex(r.stderr, new RegExp(`cannot serve the keyprovider gRPC service on localhost:${port}: the port is in use; pick another port with -port \\[GRPC_LISTEN_FAILED\\]`))
})

test.serial('remotefs --grpc-port serves gRPC in the same process as the mount and the HTTP API; /status shows it', async (t) => {
  const ws = await e2e.workspace()
  const mp = path.join(ws.parent, 'app')
  const [apiPort, grpcPort] = [await freePort(), await freePort()]
  const sidecar = await e2e.sidecar(
    sidecarArgs([{ mount_point: mp, azure_url: `file://${img.image}`, raw_key: img.key.toString('hex') }], { azure_info: { identity: { client_id: 'pod-identity' } } }),
    {
      args: ['--allow-raw-key', '-port', String(apiPort), '--attestation', 'simulated', '--simulated-state', `${s.dir}/snp`],
      env: { ...podEnv(), EncfsGrpcPort: String(grpcPort) },
    },
  )
  await waitReady(sidecar, [mp])
  t.is((await readFromChild(path.join(mp, 'app.txt'))).toString(), 'mounted next to the keyprovider\n')
  const st = (await (await fetch(`http://127.0.0.1:${apiPort}/status`)).json()) as { ready: boolean; grpc: { serving: boolean; addresses: string[] } }
  t.true(st.ready)
  t.deepEqual(st.grpc, { serving: true, addresses: [`localhost:${grpcPort}`] })
  const clients = keyProviderClients(`localhost:${grpcPort}`)
  t.teardown(() => clients.close())
  const { publicEncrypt, constants } = await import('node:crypto')
  const secret = randomBytes(32)
  const annotation = JSON.stringify({
    kid: 'image-key',
    wrapped_data: publicEncrypt({ key: rsa.publicKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, secret).toString('base64'),
    wrap_type: 'rsa_3072',
    kms_endpoint: s.akv.endpoint,
    attester_endpoint: s.maa.endpoint,
  })
  const res = await call(clients.key_provider, 'UnWrapKey', { key_provider_key_wrap_protocol_input: unwrapInput(annotation) })
  t.deepEqual(unwrappedSecret(res.key_provider_key_wrap_protocol_output), secret)
  const bad = await refusal(call(clients.keyprovider, 'UnWrapKey', { KeyProviderKeyWrapProtocolInput: unwrapInput(annotation, 'kbs') }))
  t.is(bad.code, status.INVALID_ARGUMENT)
  t.is(await stopSidecar(sidecar), 0)
  await t.throwsAsync(call(clients.key_provider, 'SayHello', { name: 'x' }, 2000), undefined, 'gRPC stops with remotefs')
  await rm(sidecar.runtimeDir, { recursive: true, force: true })
})
