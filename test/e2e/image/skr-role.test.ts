// The image in the skr role as the Go skr image is run: started with no configuration (Go's own CI
// starts it so), Go's client scripts in containers of the same image as its ACI example runs
// them, /bin/skr's offline wrap and the keyprovider gRPC service, get-snp-report and
// get-fake-snp-report, and the AASP role (EncfsRole=aasp). Simulated SNP and the MAA / Key Vault /
// IMDS emulators on loopback.
import test, { type ExecutionContext } from 'ava'
import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto'
import { createServer } from 'node:net'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { E2eFixture, freePort, waitUntil } from '../../helpers/e2e.js'
import { buildImage, leftoverContainers, podman, removeContainer, runContainer, IMAGE, type Container, type RunOptions } from '../../helpers/podman.js'
import { podPlatform, type PodPlatform } from '../../helpers/pod.js'
import { keyProviderClients, call, FIELD, unwrapInput, unwrappedSecret } from '../../helpers/keyprovider-client.js'
import { PACKAGES } from '../../../src/keyprovider-grpc/server.js'
import { parseReport } from '../../../src/attestation/report.js'

const e2e = new E2eFixture(test)
let pod: PodPlatform
const octKey = randomBytes(32)
const runtimeData = Buffer.from(JSON.stringify({ keys: [{ kty: 'RSA', kid: 'runtime', e: 'AQAB', n: randomBytes(256).toString('base64url') }] })).toString('base64')

test.before(async () => {
  const built = await buildImage((line) => console.log(`image: ${line}`))
  console.log(`image: ${IMAGE} built in ${(built.buildMs / 1000).toFixed(1)} s, size ${(built.sizeBytes / 1e6).toFixed(0)} MB`)
  pod = await podPlatform(e2e)
  await pod.stack.importKey('skr-key', octKey)
})

test.after.always('no container of this file is left', async () => {
  const left = await leftoverContainers()
  if (left.length > 0) throw new Error(`containers left behind: ${left.join(', ')}`)
})

/** Port 8080 is the skr API's, on the host network the containers share: it must be free for these tests. */
async function require8080Free(): Promise<void> {
  const server = createServer()
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(new Error(err.code === 'EADDRINUSE' ? 'port 8080 is in use on this machine: the skr role serves Go clients on localhost:8080; stop what holds it' : err.message)),
    )
    server.listen(8080, '127.0.0.1', () => resolve())
  })
  await new Promise((resolve) => server.close(resolve))
}

async function start(t: ExecutionContext, role: string, o: RunOptions): Promise<Container> {
  const c = await runContainer(role, o)
  t.teardown(() => removeContainer(c))
  return c
}

/** A file a client script writes in its container, once it is there and not empty. */
async function fileOf(c: Container, file: string): Promise<string> {
  let content = ''
  await waitUntil(
    `${file} in ${c.name}`,
    async () => {
      content = (await c.exec(`cat ${file} 2>/dev/null`)).stdout
      return content.length > 0
    },
    { timeoutMs: 90_000, intervalMs: 500, details: () => c.logs() },
  )
  return content
}

async function stopsCleanly(t: ExecutionContext, c: Container): Promise<void> {
  const stopped = await c.stop(30)
  t.is(stopped.exitCode, 0, await c.logs())
  t.true(stopped.ms < 15_000, `${c.name} stopped within 15 s (took ${stopped.ms} ms)`)
}

test.serial('no configuration at all (as Go CI starts the skr image): the skr role serves the API on localhost:8080, and says the SNP device is missing', async (t) => {
  await require8080Free()
  const skr = await start(t, 'skr-bare', {})
  await skr.waitForLog(/"msg":"ready: serving the attestation and key release API"/)
  const status = await skr.exec('curl -sS -w "\\n%{http_code}" http://localhost:8080/status')
  t.is(status.code, 0, status.stderr)
  const [body, code] = status.stdout.split('\n')
  t.is(code, '200')
  t.like(JSON.parse(body ?? ''), { message: 'Status OK', ready: true })
  const raw = await skr.exec(`curl -sS -w "\\n%{http_code}" -X POST -H 'Content-Type: application/json' -d '{"runtime_data":"${runtimeData}"}' http://localhost:8080/attest/raw`)
  t.regex(raw.stdout, /no SEV-SNP report source found.*\n500$/s, 'without the device, attestation fails with a message that names it')
  t.regex(await skr.logs(), /ATTEST_NO_PROVIDER|no SEV-SNP report source found/)
  await stopsCleanly(t, skr)
})

test.serial("Go's client scripts in containers of the image (the ACI example): attest/raw, attest/combined, attest/maa and key/release through curl", async (t) => {
  await require8080Free()
  // The sidecar has no configuration of its own: only what the platform gives a container.
  const skr = await start(t, 'skr', { env: pod.env, volumes: pod.volumes })
  await skr.waitForLog(/"msg":"ready: serving the attestation and key release API"/)
  const { maa, akv } = pod.stack
  const attest = await start(t, 'attest-client', { entrypoint: '/tests/skr/attest_client.sh', env: { AttestClientRuntimeData: runtimeData } })
  const attestMaa = await start(t, 'attest-maa-client', {
    entrypoint: '/tests/skr/attest_client.sh',
    env: { AttestClientRuntimeData: runtimeData, AttestClientMAAEndpoint: maa.endpoint },
  })
  const release = await start(t, 'skr-client', {
    entrypoint: '/tests/skr/skr_client.sh',
    env: { SkrClientMAAEndpoint: maa.endpoint, SkrClientAKVEndpoint: akv.endpoint, SkrClientKID: 'skr-key' },
  })

  const report = parseReport(Buffer.from((JSON.parse(await fileOf(attest, '/raw.out')) as { report: string }).report, 'hex'))
  const digest = createHash('sha256').update(Buffer.from(runtimeData, 'base64')).digest()
  t.is(report.reportData, digest.toString('hex') + '00'.repeat(32), 'REPORT_DATA is SHA-256 of the runtime data')
  const combined = JSON.parse(await fileOf(attest, '/combined.out')) as Record<string, string>
  t.deepEqual(Object.keys(combined).sort(), ['endorsed_tcb', 'endorsements', 'evidence', 'uvm_endorsements'])
  const token = (JSON.parse(await fileOf(attestMaa, '/maatoken.out')) as { token: string }).token
  const claims = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString()) as Record<string, unknown>
  t.is(claims['x-ms-sevsnpvm-hostdata'], pod.stack.hostData.toString('hex'), "the MAA token carries the pod's policy digest")
  const released = JSON.parse(await fileOf(release, '/keyrelease.out')) as { key: string }
  t.is((JSON.parse(released.key) as { k: string }).k, octKey.toString('base64url'), 'the key released to the pod is the imported one')
  t.regex(await release.logs(), /SkrClientKID = skr-key/)
  for (const c of [attest, attestMaa, release, skr]) await stopsCleanly(t, c)
})

/**
 * A secret wrapped offline by the image's `bin` (/bin/skr or /bin/aasp: -infile -keypath -outfile)
 * with a new RSA key imported as `kid`, as Go's examples wrap one: the annotation and the secret.
 */
async function wrapOffline(t: ExecutionContext, bin: string, kid: string): Promise<{ annotation: Buffer; secret: Buffer }> {
  const rsa = generateKeyPairSync('rsa', { modulusLength: 3072 })
  await pod.stack.importKey(kid, { ...rsa.privateKey.export({ format: 'jwk' }), kty: 'RSA-HSM' })
  const keys = path.join(await e2e.tempDir('encfs-keys-'), 'keys')
  await mkdir(keys)
  await writeFile(path.join(keys, `${kid}-pub.pem`), rsa.publicKey.export({ format: 'pem', type: 'spki' }))
  await writeFile(
    path.join(keys, `${kid}-info.json`),
    JSON.stringify({ public_key_path: `/keys/${kid}-pub.pem`, kms_endpoint: pod.stack.akv.endpoint, attester_endpoint: pod.stack.maa.endpoint }),
  )
  const secret = randomBytes(48)
  await writeFile(path.join(keys, 'secret'), secret)
  const wrap = await podman([
    'run',
    '--rm',
    '--network',
    'host',
    '--volume',
    `${keys}:/keys`,
    '--entrypoint',
    bin,
    IMAGE,
    '-infile',
    '/keys/secret',
    '-keypath',
    `/keys/${kid}`,
    '-outfile',
    '/keys/wrapped',
  ])
  t.is(wrap.code, 0, wrap.stderr)
  const annotation = Buffer.from(await readFile(path.join(keys, 'wrapped'), 'utf8'), 'base64')
  t.like(JSON.parse(annotation.toString()), { kid, wrap_type: 'rsa_3072' })
  return { annotation, secret }
}

test.serial('/bin/skr -infile -keypath -outfile wraps offline; /skr.sh with ServerType=grpc unwraps it by secure key release', async (t) => {
  const { annotation, secret } = await wrapOffline(t, '/bin/skr', 'wrap-key')

  const port = await freePort()
  const skr = await start(t, 'skr-grpc', { entrypoint: '/skr.sh', env: { ...pod.env, ServerType: 'grpc', Port: String(port) }, volumes: pod.volumes })
  await skr.waitForLog(/"msg":"ready: serving the keyprovider gRPC service"/)
  const clients = keyProviderClients(`localhost:${port}`)
  t.teardown(() => clients.close())
  for (const pkg of PACKAGES) {
    const res = await call(clients[pkg], 'UnWrapKey', { [FIELD[pkg].in]: unwrapInput(annotation) })
    t.deepEqual(unwrappedSecret(res[FIELD[pkg].out]), secret, `${pkg}.UnWrapKey returns the secret`)
  }
  await stopsCleanly(t, skr)
})

test.serial('get-snp-report <hex> and get-fake-snp-report: hex reports on stdout, with Go conventions', async (t) => {
  const fake = await podman([
    'run',
    '--rm',
    '--network',
    'host',
    ...pod.volumes.flatMap((v) => ['--volume', v]),
    '--entrypoint',
    '/bin/get-fake-snp-report',
    IMAGE,
    'c0ffee',
    'ab'.repeat(32),
  ])
  t.is(fake.code, 0, fake.stderr)
  t.regex(fake.stdout, /^[0-9a-f]{2368}$/, 'a 1184-byte report in hex, no newline')
  const fakeReport = parseReport(Buffer.from(fake.stdout, 'hex'))
  t.is(fakeReport.reportData, `c0ffee${'00'.repeat(61)}`)
  t.is(fakeReport.hostData, 'ab'.repeat(32))

  const real = await podman([
    'run',
    '--rm',
    '--network',
    'host',
    '--env',
    'EncfsAttestation=simulated',
    ...pod.volumes.flatMap((v) => ['--volume', v]),
    '--entrypoint',
    '/bin/get-snp-report',
    IMAGE,
    'c0ffee',
  ])
  t.is(real.code, 0, real.stderr)
  t.regex(real.stdout, /^[0-9a-f]{2368}\n$/, 'hex and a newline, as get-snp-report prints')
  const none = await podman(['run', '--rm', '--network', 'host', '--entrypoint', '/bin/get-snp-report', IMAGE, 'c0ffee'])
  t.not(none.code, 0)
  t.is(none.stdout, '', 'no report without a device')
  t.regex(none.stderr, /no SEV-SNP report source found.*\[ATTEST_NO_PROVIDER\]/)
})

test.serial('EncfsRole=aasp through /encfs.sh (the AASP role): /bin/aasp wraps offline, then one process serves the keyprovider gRPC service and the HTTP API', async (t) => {
  const { annotation, secret } = await wrapOffline(t, '/bin/aasp', 'aasp-key')

  const [grpcPort, httpPort] = [await freePort(), await freePort()]
  // As a pod's args after the image's command: /encfs.sh passes them on to /bin/aasp.
  const aasp = await start(t, 'aasp', {
    env: { ...pod.env, EncfsRole: 'aasp', AZURE_CLIENT_ID: 'aasp-pod-identity' },
    volumes: pod.volumes,
    args: ['/encfs.sh', '-keyprovider_sock', `127.0.0.1:${grpcPort}`, '-http_keyprovider_sock', String(httpPort)],
  })
  await aasp.waitForLog(/"msg":"ready: serving the keyprovider gRPC service \(attestation agent \\"aasp\\"\)/)
  t.regex(await aasp.logs(), /"msg":"Starting \/bin\/aasp\.\.\."/, "Go AASP's first line")
  const clients = keyProviderClients(`localhost:${grpcPort}`)
  t.teardown(() => clients.close())
  const [unwrapped, maa] = await Promise.all([
    call(clients.keyprovider, 'UnWrapKey', { KeyProviderKeyWrapProtocolInput: unwrapInput(annotation, 'aasp') }),
    aasp.exec(`curl -sS -w "\\n%{http_code}" -X POST -d '{"maa_endpoint":"${pod.stack.maa.endpoint}","runtime_data":"${runtimeData}"}' http://localhost:${httpPort}/attest/maa`),
  ])
  t.deepEqual(unwrappedSecret(unwrapped.KeyProviderKeyWrapProtocolOutput), secret, 'UnWrapKey (agent "aasp") returns the secret')
  const [body, code] = maa.stdout.split('\n')
  t.is(code, '200', maa.stdout + maa.stderr)
  t.truthy((JSON.parse(body ?? '{}') as { token?: string }).token, 'the same process answers /attest/maa')
  await stopsCleanly(t, aasp)
})
