// The AASP role, as Go's AASP example ran it (examples/aasp): a wrapping key made as
// setup-key-mhsm.sh makes it, a secret wrapped offline by `aasp -infile`, then /bin/aasp serving
// the keyprovider gRPC service and the HTTP API from one process (started by the image's entry
// point with EncfsRole=aasp), examples/aasp/unwrap.sh unwrapping while HTTP clients call the
// same process. Simulated SNP with the MAA, Key Vault and IMDS emulators.
import test from 'ava'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { generateKeyPairSync } from 'node:crypto'
import { chmod, copyFile, mkdir, readFile, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { status } from '@grpc/grpc-js'
import type { SkrStack } from '../helpers/skr-stack.js'
import type { ImdsEmulator } from '../../src/emulators/imds/server.js'
import { E2eFixture, ENCFS_JS, freePort, waitUntil } from '../helpers/e2e.js'
import { call, keyProviderClients, refusal, unwrapInput } from '../helpers/keyprovider-client.js'

const exec = promisify(execFile)
const REPO = path.resolve(path.dirname(ENCFS_JS), '..')
const AASP_JS = path.join(REPO, 'bin', 'aasp.js')
const GRPCURL_JS = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../helpers/grpcurl.js')
// Go's examples/aasp/aasp-sample-template.yaml, as it set AaspSideCarArgs (a LocalTHIM certcache).
const GO_AASP_SIDECAR_ARGS =
  'ewogICAgImNlcnRjYWNoZSI6IHsKCQkiZW5kcG9pbnRfdHlwZSI6ICJMb2NhbFRISU0iLAoJCSJlbmRwb2ludCI6ICIxNjkuMjU0LjE2OS4yNTQvbWV0YWRhdGEvVEhJTS9hbWQvY2VydGlmaWNhdGlvbiIKCX0gIAp9'
const KEY = 'testkey000'

const e2e = new E2eFixture(test)
let s: SkrStack
let imds: ImdsEmulator
let dir: string
const rsa = generateKeyPairSync('rsa', { modulusLength: 3072 })

test.before(async () => {
  s = await e2e.skrStack()
  imds = await e2e.imds(s)
  dir = await e2e.tempDir('encfs-aasp-')
  // What setup-key-mhsm.sh leaves: the key in the vault with its release policy (attestation type
  // and the pod's host data), <key>-pub.pem and <key>-info.json naming the vault and the MAA.
  await s.importKey(KEY, { ...rsa.privateKey.export({ format: 'jwk' }), kty: 'RSA-HSM' }, [
    [
      { claim: 'x-ms-attestation-type', equals: 'sevsnpvm' },
      { claim: 'x-ms-sevsnpvm-hostdata', equals: s.hostData.toString('hex') },
    ],
  ])
  await writeFile(path.join(dir, `${KEY}-pub.pem`), rsa.publicKey.export({ format: 'pem', type: 'spki' }))
  await writeFile(
    path.join(dir, `${KEY}-info.json`),
    `{\n  "public_key_path": "${KEY}-pub.pem",\n  "kms_endpoint": "${s.akv.endpoint}",\n  "attester_endpoint": "${s.maa.endpoint}"\n}\n`,
  )
  await copyFile(path.join(REPO, 'examples', 'aasp', 'plaintext'), path.join(dir, 'plaintext'))
})

/** What the pod gives the sidecar: the emulators' CA, its security context, the identity endpoint. */
const podEnv = (): Record<string, string> => ({ ...s.podEnv({ imdsUrl: imds.url }), EncfsSimulatedState: `${s.dir}/snp` })

/** grpcurl for unwrap.sh: the real one when installed, else the stand-in (test/helpers/grpcurl.ts) on PATH. */
async function grpcurlPath(t: { log(...v: unknown[]): void }): Promise<string> {
  const real = await exec('sh', ['-c', 'command -v grpcurl']).then(
    () => true,
    () => false,
  )
  if (real) {
    t.log('unwrap.sh runs with the installed grpcurl')
    return process.env.PATH ?? ''
  }
  const bin = path.join(dir, 'bin')
  await mkdir(bin, { recursive: true })
  await writeFile(path.join(bin, 'grpcurl'), `#!/bin/sh\nexec "${process.execPath}" "${GRPCURL_JS}" "$@"\n`)
  await chmod(path.join(bin, 'grpcurl'), 0o755)
  t.log('grpcurl is not installed: unwrap.sh runs with the grpc-js stand-in')
  return `${bin}:${process.env.PATH ?? ''}`
}

test.serial('aasp -infile -keypath -outfile wraps the example plaintext offline, as Go AASP did', async (t) => {
  const r = await exec(process.execPath, [AASP_JS, '-infile', 'plaintext', '-keypath', `./${KEY}`, '-outfile', 'wrapped'], { cwd: dir })
  t.regex(r.stderr, /Success! The wrapped data is saved to wrapped/)
  const annotation = JSON.parse(Buffer.from(await readFile(path.join(dir, 'wrapped'), 'utf8'), 'base64').toString()) as Record<string, string>
  t.like(annotation, { kid: KEY, wrap_type: 'rsa_3072', kms_endpoint: s.akv.endpoint, attester_endpoint: s.maa.endpoint })
})

test.serial('EncfsRole=aasp: one process serves gRPC (unwrap.sh gets the secret back) and the HTTP API at the same time', async (t) => {
  const [grpcPort, httpPort] = [await freePort(), await freePort()]
  const logFile = path.join(dir, 'aasp.log')
  const aasp = e2e.start(
    'sh',
    [path.join(REPO, 'encfs.sh'), '-keyprovider_sock', `127.0.0.1:${grpcPort}`, '-http_keyprovider_sock', String(httpPort), '--attestation', 'simulated', '-logfile', logFile],
    { env: { ...podEnv(), ENCFS_HOME: REPO, EncfsRole: 'aasp', AaspSideCarArgs: GO_AASP_SIDECAR_ARGS, AZURE_CLIENT_ID: 'aasp-pod-identity', EncfsSideCarArgs: '', LogLevel: '' } },
  )
  const log = () => readFile(logFile, 'utf8').catch(() => '')
  // Ready, and (as Go skr at start-up) the MAA User-Agent learnt from the identity's token.
  const learnt = 'setting default MAA User-Agent to: ConfidentialSkrContainer client_id=aasp-pod-identity'
  const ready = async () => {
    const text = await log()
    return text.includes(learnt) && text.includes('"msg":"ready:')
  }
  await waitUntil('aasp to be ready', ready, {
    exited: aasp.exited,
    timeoutMs: 30_000,
    details: async () => `${aasp.output()}\n${await log()}`,
  })
  const PATH = await grpcurlPath(t)
  const unwrapped = path.join(dir, 'plaintext.out')
  const [unwrap, statusRes, release, maa] = await Promise.all([
    exec('sh', [path.join(REPO, 'examples', 'aasp', 'unwrap.sh'), 'wrapped', unwrapped], { cwd: dir, env: { ...process.env, PATH, KEY_PROVIDER_PORT: String(grpcPort) } }),
    fetch(`http://127.0.0.1:${httpPort}/status`),
    // As `curl -d` sends it: a form content type.
    fetch(`http://127.0.0.1:${httpPort}/key/release`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: JSON.stringify({ maa_endpoint: s.maa.endpoint, akv_endpoint: s.akv.endpoint, kid: KEY }),
    }),
    fetch(`http://127.0.0.1:${httpPort}/attest/maa`, {
      method: 'POST',
      body: JSON.stringify({ maa_endpoint: s.maa.endpoint, runtime_data: Buffer.from('{}').toString('base64') }),
    }),
  ])
  t.regex(unwrap.stderr, /Unwrapped secret saved to/)
  t.deepEqual(await readFile(unwrapped), await readFile(path.join(dir, 'plaintext')), 'the secret comes back byte-identical')
  t.is(statusRes.status, 200)
  t.is(((await statusRes.json()) as { message: string }).message, 'Status OK')
  t.is(release.status, 200, await release.clone().text())
  t.is((JSON.parse(((await release.json()) as { key: string }).key) as { kty: string }).kty, 'RSA')
  t.is(maa.status, 200, await maa.clone().text())
  t.is(s.maa.lastUserAgent, 'ConfidentialSkrContainer client_id=aasp-pod-identity', "Go's default MAA User-Agent, learnt from the identity's token")

  const clients = keyProviderClients(`127.0.0.1:${grpcPort}`)
  t.teardown(() => clients.close())
  t.deepEqual(await call(clients.keyprovider, 'SayHello', { name: 'Steven' }), { message: 'Hello Steven' })
  const skrAgent = await refusal(call(clients.keyprovider, 'UnWrapKey', { KeyProviderKeyWrapProtocolInput: unwrapInput(await readFile(path.join(dir, 'wrapped'), 'utf8'), 'skr') }))
  t.is(skrAgent.code, status.INVALID_ARGUMENT)
  t.regex(skrAgent.details, /this key provider is "aasp"/)
  const text = await log()
  t.regex(text, /"msg":"Starting [^"]*aasp\.js\.\.\."/, "Go's first line")
  t.false(text.includes('lighthouse keeper'), 'the secret is not logged')
  t.is(await aasp.stop(), 0, 'SIGTERM stops both services and exits 0')
})

test.serial('the entry point runs /bin/aasp for EncfsRole=aasp and passes its arguments on; the image links /bin/aasp', async (t) => {
  const r = await exec('sh', [path.join(REPO, 'encfs.sh'), '-keyprovider_sock', '127.0.0.1:50000', '-loglevel', 'info'], {
    env: { ...process.env, ENCFS_HOME: '/opt/encfs', ENCFS_DRY_RUN: '1', EncfsRole: 'aasp' },
  })
  t.is(r.stdout.trim().split('\n').join(' '), 'node /opt/encfs/bin/aasp.js -keyprovider_sock 127.0.0.1:50000 -loglevel info')
  t.regex(await readFile(path.join(REPO, 'docker', 'encfs', 'Dockerfile'), 'utf8'), /ln -sf \/opt\/encfs\/bin\/aasp\.js \/bin\/aasp/)
})

test.serial("aasp refuses a -keyprovider_sock beyond loopback without --unsafe-listen, and a bad -loglevel as Go's logrus.Fatal does (exit 1)", async (t) => {
  const wide = await exec(process.execPath, [AASP_JS, '-keyprovider_sock', ':50000']).catch((e: { code: number; stderr: string }) => e)
  t.is((wide as { code: number }).code, 2)
  t.regex((wide as { stderr: string }).stderr, /-keyprovider_sock :50000 would listen beyond loopback.*--unsafe-listen/)
  const level = await exec(process.execPath, [AASP_JS, '-loglevel', 'loud']).catch((e: { code: number; stderr: string }) => e)
  t.is((level as { code: number }).code, 1)
  t.regex((level as { stderr: string }).stderr, /\[LOG_LEVEL_INVALID\]/)
})
