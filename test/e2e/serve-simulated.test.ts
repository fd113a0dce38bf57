// `encfs serve --attestation simulated` is self-contained: no hand-built UVM_HOST_AMD_CERTIFICATE.
import test, { type ExecutionContext } from 'ava'
import { spawn } from 'node:child_process'
import { writeFile } from 'node:fs/promises'
import path from 'node:path'
import { E2eFixture, ENCFS_JS, freePort, waitUntil } from '../helpers/e2e.js'
import type { SkrStack } from '../helpers/skr-stack.js'

const e2e = new E2eFixture(test)
let s: SkrStack
test.before(async () => {
  s = await e2e.skrStack()
})

/** `encfs serve --attestation simulated` with `extra` flags, ready; its log so far, and /attest/maa's answer. */
async function serveAndAttest(t: ExecutionContext, extra: string[]): Promise<{ res: Response; log: () => string }> {
  const ctx = await e2e.tempDir('encfs-ctx-')
  const caFile = path.join(s.dir, 'serve-ca.pem')
  await writeFile(caFile, s.ca.join(''))
  const port = await freePort()
  const env: NodeJS.ProcessEnv = { ...process.env, NODE_EXTRA_CA_CERTS: caFile, UVM_SECURITY_CONTEXT_DIR: ctx, LogLevel: 'info' }
  for (const k of ['UVM_HOST_AMD_CERTIFICATE', 'UVM_SECURITY_POLICY', 'UVM_REFERENCE_INFO', 'SkrSideCarArgs', 'Port']) delete env[k]
  const child = spawn(process.execPath, [ENCFS_JS, 'serve', '--attestation', 'simulated', '--simulated-state', `${s.dir}/snp`, '-port', String(port), ...extra], {
    env,
    stdio: ['ignore', 'ignore', 'pipe'],
  })
  let log = ''
  child.stderr.on('data', (d: Buffer) => {
    log += d.toString()
  })
  const exited = new Promise<number | null>((resolve) => child.on('exit', resolve))
  t.teardown(async () => {
    child.kill('SIGTERM')
    await exited
  })
  await waitUntil('encfs serve to be ready', async () => log.includes('"msg":"ready:'), { exited, timeoutMs: 20_000, details: () => log })
  const res = await fetch(`http://127.0.0.1:${port}/attest/maa`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ maa_endpoint: s.maa.endpoint, runtime_data: Buffer.from('{"k":1}').toString('base64') }),
  })
  return { res, log: () => log }
}

test('encfs serve --attestation simulated answers /attest/maa with only the simulated chip, and says which chain it uses', async (t) => {
  const { res, log } = await serveAndAttest(t, [])
  t.is(res.status, 200, await res.clone().text())
  t.truthy(((await res.json()) as { token?: string }).token)
  t.regex(log(), /using the simulated chip's own VCEK chain as the certificate collateral/)
  t.notRegex(log(), /ATTEST_NO_CERTIFICATES/)
})

test("skr's -allowTestingMismatchedTCB=true is accepted and does what it does in Go: the host chain no longer matches, so without a certcache attestation fails", async (t) => {
  const { res, log } = await serveAndAttest(t, ['-allowTestingMismatchedTCB=true'])
  t.regex(log(), /FOR TESTING ONLY/)
  t.true(res.status >= 500, `status ${res.status}`)
  t.regex(((await res.json()) as { error: string }).error, /no VCEK certificate chain .*host certificate \(TCBM 00000000ffffffff\)/)
})

test('encfs serve --grpc-port serves the keyprovider gRPC service and the HTTP API from one process; not with -server_type grpc', async (t) => {
  const { keyProviderClients, call } = await import('../helpers/keyprovider-client.js')
  const [port, grpcPort] = [await freePort(), await freePort()]
  const env: Record<string, string> = { UVM_SECURITY_CONTEXT_DIR: await e2e.tempDir('encfs-ctx-'), SkrSideCarArgs: '', Port: '', EncfsGrpcPort: '' }
  const serve = e2e.start(
    process.execPath,
    [ENCFS_JS, 'serve', '-port', String(port), '--grpc-port', String(grpcPort), '--attestation', 'simulated', '--simulated-state', `${s.dir}/snp`],
    {
      env,
    },
  )
  await waitUntil('encfs serve to be ready', async () => serve.output().includes('"msg":"ready: serving the attestation and key release API and the keyprovider gRPC service"'), {
    exited: serve.exited,
    timeoutMs: 20_000,
    details: () => serve.output(),
  })
  const clients = keyProviderClients(`localhost:${grpcPort}`)
  t.teardown(() => clients.close())
  const [status, hello, report] = await Promise.all([
    fetch(`http://127.0.0.1:${port}/status`),
    call(clients.keyprovider, 'SayHello', { name: 'both' }),
    call(clients.key_provider, 'GetReport', { report_data_hex_string: 'c0ffee' }),
  ])
  t.is(status.status, 200)
  t.deepEqual(hello, { message: 'Hello both' })
  t.is(String(report.report_hex_string).length, 2368)
  t.is(await serve.stop(), 0)
  const grpcOnly = e2e.start(process.execPath, [ENCFS_JS, 'serve', '-server_type', 'grpc', '-port', String(port), '--grpc-port', String(grpcPort)], { env })
  t.is(await grpcOnly.exited, 2)
  t.regex(grpcOnly.output(), /--grpc-port serves gRPC next to the HTTP API: with -server_type grpc, -port is already the gRPC port \(see --help\) \[CLI_USAGE\]/)
})
