// The keyprovider gRPC service over TCP with a real grpc-js client, on both service paths
// (key_provider.* and keyprovider.*): simulated SNP, the MAA, Key Vault and IMDS emulators.
import test from 'ava'
import { listeningSockets } from '../helpers/remotefs.js'
import { generateKeyPairSync, randomBytes, publicEncrypt, constants } from 'node:crypto'
import { writeFile, readFile } from 'node:fs/promises'
import path from 'node:path'
import { createRequire } from 'node:module'
import { pino } from 'pino'
import { credentials, loadPackageDefinition, status, type GrpcObject, type ServiceClientConstructor } from '@grpc/grpc-js'
import { loadSync } from '@grpc/proto-loader'
import { startSkrStack, type SkrStack } from '../helpers/skr-stack.js'
import { startImdsEmulator, type ImdsEmulator } from '../../src/emulators/imds/server.js'
import { AttestationContext } from '../../src/attestation/context.js'
import { verifyReport } from '../../src/attestation/verify.js'
import { maaReportData } from '../../src/attestation/report-data.js'
import { KeyProviderService } from '../../src/keyprovider-grpc/service.js'
import { listenKeyProvider, PACKAGES, type KeyProviderServer } from '../../src/keyprovider-grpc/server.js'
import { keyProviderClients, call, refusal, FIELD, unwrapInput, unwrappedSecret, type Message } from '../helpers/keyprovider-client.js'
import { vector } from '../helpers/vectors.js'
import { startSilentListener } from '../helpers/fault-proxy.js'

let s: SkrStack
let imds: ImdsEmulator
let server: KeyProviderServer
let bare: KeyProviderServer
const logLines: string[] = []
const rsa = generateKeyPairSync('rsa', { modulusLength: 3072 })
const strict = generateKeyPairSync('rsa', { modulusLength: 2048 })
const oct = randomBytes(32)
let keyPath: string
let clients: ReturnType<typeof keyProviderClients>
let bareClients: ReturnType<typeof keyProviderClients>

test.before(async () => {
  s = await startSkrStack()
  imds = await startImdsEmulator(s.authority)
  // UnWrapKey releases with the pod's identity, as skr does (no bearer token in the request).
  process.env.AZURE_POD_IDENTITY_AUTHORITY_HOST = imds.url
  const ours = [[{ claim: 'x-ms-sevsnpvm-hostdata', equals: s.hostData.toString('hex') }]]
  await s.importKey('wrapping-key', { ...rsa.privateKey.export({ format: 'jwk' }), kty: 'RSA-HSM' }, ours)
  await s.importKey('debug-only-key', { ...strict.privateKey.export({ format: 'jwk' }), kty: 'RSA-HSM' }, [[{ claim: 'x-ms-sevsnpvm-is-debuggable', equals: 'true' }]])
  await s.importKey('oct-key', oct, ours)
  keyPath = path.join(s.dir, 'wrapping-key')
  await writeFile(`${keyPath}-pub.pem`, rsa.publicKey.export({ format: 'pem', type: 'spki' }))
  await writeFile(`${keyPath}-info.json`, JSON.stringify({ public_key_path: `${keyPath}-pub.pem`, kms_endpoint: s.akv.endpoint, attester_endpoint: s.maa.endpoint }))

  const logger = pino(
    { level: 'debug' },
    {
      write: (l: string) => {
        logLines.push(l)
      },
    },
  )
  const attestation = new AttestationContext({ attestation: 'simulated', simulatedStateDir: `${s.dir}/snp`, uvm: s.uvm, logger })
  server = await listenKeyProvider(new KeyProviderService({ attestation, logger, ca: s.ca, vaultHosts: s.vaultHosts }), { port: 0, logger })
  // A server on a machine without SEV-SNP (this test machine has no /dev/sev-guest, /dev/sev or configfs-tsm).
  bare = await listenKeyProvider(new KeyProviderService({ attestation: new AttestationContext({ attestation: 'auto', uvm: s.uvm, logger }), logger }), { port: 0, logger })
  clients = keyProviderClients(`localhost:${server.port}`)
  bareClients = keyProviderClients(`localhost:${bare.port}`)
})
test.after.always(async () => {
  clients?.close()
  bareClients?.close()
  await server?.close()
  await bare?.close()
  await imds?.stop()
  await s?.stop()
})

type Reply = Message
const b64 = (x: string | Buffer) => Buffer.from(x).toString('base64')

/** An annotation as Go's skr writes it, made here independently of encfs's wrap code. */
function goAnnotation(kid: string, secret: Buffer, publicKey = rsa.publicKey): string {
  const wrapped = publicEncrypt({ key: publicKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, secret)
  return `{"kid":"${kid}","wrapped_data":"${wrapped.toString('base64')}","wrap_type":"rsa_3072","kms_endpoint":"${s.akv.endpoint}","attester_endpoint":"${s.maa.endpoint}"}`
}

for (const pkg of PACKAGES) {
  const f = FIELD[pkg]

  test.serial(`${pkg}: SayHello answers "Hello " + name`, async (t) => {
    t.deepEqual(await call(clients[pkg], 'SayHello', { name: 'This is a GRPC test!' }), { message: 'Hello This is a GRPC test!' })
  })

  test.serial(`${pkg}: GetReport binds SHA-256 of the string into REPORT_DATA, and the report verifies`, async (t) => {
    const nonce = randomBytes(16).toString('hex')
    const res = await call(clients[pkg], 'GetReport', { [f.report]: nonce })
    const report = Buffer.from(res[f.reportOut] as string, 'hex')
    t.is(report.length, 1184)
    const certs = await s.snp.thimCerts()
    t.notThrows(() => verifyReport(report, { chain: certs.vcekCert + certs.certificateChain, reportData: maaReportData(Buffer.from(nonce, 'utf8')), hostData: s.hostData }))
  })

  test.serial(`${pkg}: GetAttestationData answers what /attest/combined does`, async (t) => {
    const runtime = Buffer.from(`{"pkg":"${pkg}"}`)
    const res = await call(clients[pkg], 'GetAttestationData', { [f.data]: b64(runtime) })
    const fields = Object.values(res) as string[]
    t.is(fields.length, 4)
    const [endorsedTcb, chain, evidence, uvm] = fields
    t.is(endorsedTcb, (await s.snp.thimCerts()).tcbm)
    t.regex(Buffer.from(chain!, 'base64').toString(), /BEGIN CERTIFICATE/)
    const report = Buffer.from(evidence!, 'base64')
    t.notThrows(() => verifyReport(report, { chain: Buffer.from(chain!, 'base64').toString(), reportData: maaReportData(runtime), hostData: s.hostData }))
    t.is(uvm, s.uvm.referenceInfo)
  })

  test.serial(`${pkg}: UnWrapKey releases the RSA key through MAA and Key Vault and returns the secret byte-identical`, async (t) => {
    const secret = randomBytes(200)
    const res = await call(clients[pkg], 'UnWrapKey', { [f.in]: unwrapInput(goAnnotation('wrapping-key', secret)) })
    const out = (res[f.out] as Buffer).toString()
    t.is(out, `{"keywrapresults":{"annotation":null},"keyunwrapresults":{"optsdata":"${secret.toString('base64')}"}}`)
    t.true(imds.requests >= 1, 'the vault token came from the managed identity')
  })

  test.serial(`${pkg}: an annotation whose kms_endpoint is not a vault: PERMISSION_DENIED before any token, and the named host sees nothing`, async (t) => {
    const outside = await startSilentListener()
    t.teardown(() => outside.stop())
    const tokens = imds.requests
    const annotation = goAnnotation('wrapping-key', Buffer.from('secret')).replace(s.akv.endpoint, outside.endpoint)
    const err = await refusal(call(clients[pkg], 'UnWrapKey', { [f.in]: unwrapInput(annotation) }))
    t.is(err.code, status.PERMISSION_DENIED, err.details)
    t.regex(err.details, /keyunwrapparams\.annotation\.kms_endpoint "127\.0\.0\.1:\d+" is not a Key Vault or Managed HSM of the Azure clouds .*EncfsVaultHosts/)
    t.is(outside.connections, 0, 'the host the annotation named was never contacted')
    t.is(imds.requests, tokens, 'no vault token was minted for the pod identity')
  })

  test.serial(`${pkg}: bad attestation-agent parameters and annotations are INVALID_ARGUMENT with what is wrong`, async (t) => {
    const good = goAnnotation('wrapping-key', Buffer.from('x'))
    const cases: [Buffer, RegExp][] = [
      [Buffer.from('not json'), /keyprovider input: it is not JSON/],
      [Buffer.from(JSON.stringify({ op: 'keyunwrap', keyunwrapparams: { annotation: b64(good) } })), /keyunwrapparams\.dc\.Parameters\["attestation-agent"\] is missing/],
      [unwrapInput(good, 'kbs'), /names the attestation agent "kbs", but this key provider is "skr"/],
      [
        Buffer.from(JSON.stringify({ op: 'keyunwrap', keyunwrapparams: { dc: { Parameters: { 'attestation-agent': ['%%%'] } }, annotation: b64(good) } })),
        /\["attestation-agent"\]\[0\] is not standard base64/,
      ],
      [
        Buffer.from(JSON.stringify({ op: 'keyunwrap', keyunwrapparams: { dc: { Parameters: { 'attestation-agent': [b64('skr')] } }, annotation: 'not base64!' } })),
        /keyunwrapparams\.annotation must be standard base64/,
      ],
      [unwrapInput('{"kid":"wrapping-key"}'), /annotation\.wrapped_data is required.*kms_endpoint is required.*attester_endpoint is required/],
      [unwrapInput(good.replace(`"kms_endpoint":"`, `"kms_endpoint":"https://`)), /annotation\.kms_endpoint must be a host name without a scheme \(drop "https:\/\/"\)/],
      [unwrapInput(good.replace('"kid":"wrapping-key"', '"kid":"../secrets/x?"')), /annotation\.kid must be a key name, or name\/version/],
      [
        Buffer.from(JSON.stringify({ op: 'keywrap', keyunwrapparams: { dc: { Parameters: { 'attestation-agent': [b64('skr')] } }, annotation: b64(good) } })),
        /op is "keywrap"; UnWrapKey takes "keyunwrap"/,
      ],
    ]
    for (const [input, message] of cases) {
      const err = await refusal(call(clients[pkg], 'UnWrapKey', { [f.in]: input }))
      t.is(err.code, status.INVALID_ARGUMENT, err.details)
      t.regex(err.details, message)
    }
    const noPath = await refusal(
      call(clients[pkg], 'WrapKey', {
        [f.in]: Buffer.from(JSON.stringify({ op: 'keywrap', keywrapparams: { ec: { Parameters: { 'attestation-agent': [b64('skr')] } }, optsdata: b64('x') } })),
      }),
    )
    t.is(noPath.code, status.INVALID_ARGUMENT)
    t.regex(noPath.details, /must be "skr:<key path>"/)
  })

  test.serial(`${pkg}: data wrapped for another key is INVALID_ARGUMENT; an oct key is FAILED_PRECONDITION`, async (t) => {
    const other = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey
    const wrong = await refusal(call(clients[pkg], 'UnWrapKey', { [f.in]: unwrapInput(goAnnotation('wrapping-key', Buffer.from('x'), other)) }))
    t.is(wrong.code, status.INVALID_ARGUMENT)
    t.regex(wrong.details, /cannot be decrypted with the released key wrapping-key/)
    const octRes = await refusal(call(clients[pkg], 'UnWrapKey', { [f.in]: unwrapInput(goAnnotation('oct-key', Buffer.from('x'))) }))
    t.is(octRes.code, status.FAILED_PRECONDITION)
    t.regex(octRes.details, /the released key oct-key is oct; UnWrapKey needs the RSA key/)
  })

  test.serial(`${pkg}: a release the key's policy refuses is PERMISSION_DENIED naming the step and the vault's reason`, async (t) => {
    const err = await refusal(call(clients[pkg], 'UnWrapKey', { [f.in]: unwrapInput(goAnnotation('debug-only-key', Buffer.from('x'), strict.publicKey)) }))
    t.is(err.code, status.PERMISSION_DENIED)
    t.regex(err.details, /^secure key release failed: key release of debug-only-key from 127\.0\.0\.1:\d+ failed with HTTP 403 .*x-ms-sevsnpvm-is-debuggable/)
  })

  test.serial(`${pkg}: without an SNP report source, GetReport, GetAttestationData and UnWrapKey are FAILED_PRECONDITION`, async (t) => {
    for (const [method, req] of [
      ['GetReport', { [f.report]: 'ab' }],
      ['GetAttestationData', { [f.data]: b64('{}') }],
      ['UnWrapKey', { [f.in]: unwrapInput(goAnnotation('wrapping-key', Buffer.from('x'))) }],
    ] as const) {
      const err = await refusal(call(bareClients[pkg], method, req))
      t.is(err.code, status.FAILED_PRECONDITION, `${method}: ${err.details}`)
      t.regex(err.details, /no SEV-SNP report source found/)
    }
    t.deepEqual(await call(bareClients[pkg], 'SayHello', { name: 'x' }), { message: 'Hello x' }, 'SayHello needs no attestation')
  })
}

test.serial("WrapKey on one path, UnWrapKey on the other: ocicrypt's keywrap JSON in, the secret back out", async (t) => {
  const secret = randomBytes(32)
  const wrapInput = JSON.stringify({
    op: 'keywrap',
    keywrapparams: { ec: { Parameters: { 'attestation-agent': [b64(`skr:${keyPath}`)] }, DecryptConfig: { Parameters: {} } }, optsdata: b64(secret) },
    keyunwrapparams: { dc: null, annotation: null },
  })
  const wrapped = await call(clients.key_provider, 'WrapKey', { key_provider_key_wrap_protocol_input: Buffer.from(wrapInput) })
  const output = JSON.parse((wrapped.key_provider_key_wrap_protocol_output as Buffer).toString()) as {
    keywrapresults: { annotation: string }
    keyunwrapresults: { optsdata: null }
  }
  t.is(output.keyunwrapresults.optsdata, null)
  const annotation = Buffer.from(output.keywrapresults.annotation, 'base64').toString()
  t.deepEqual(Object.keys(JSON.parse(annotation) as object), ['kid', 'wrapped_data', 'wrap_type', 'kms_endpoint', 'attester_endpoint'])
  t.like(JSON.parse(annotation), { kid: 'wrapping-key', wrap_type: 'rsa_3072', kms_endpoint: s.akv.endpoint, attester_endpoint: s.maa.endpoint })
  const res = await call(clients.keyprovider, 'UnWrapKey', { KeyProviderKeyWrapProtocolInput: unwrapInput(annotation) })
  t.deepEqual(unwrappedSecret(res.KeyProviderKeyWrapProtocolOutput), secret)
  const log = logLines.join('')
  t.false(log.includes(secret.toString('base64')), 'the secret is not logged')
  t.regex(log, /WrapKey: data wrapped/)
})

test.serial('WrapKey with a key path that has no -info.json is FAILED_PRECONDITION naming the file', async (t) => {
  const input = JSON.stringify({ op: 'keywrap', keywrapparams: { ec: { Parameters: { 'attestation-agent': [b64(`skr:${s.dir}/nokey`)] } }, optsdata: b64('x') } })
  const err = await refusal(call(clients.key_provider, 'WrapKey', { key_provider_key_wrap_protocol_input: Buffer.from(input) }))
  t.is(err.code, status.FAILED_PRECONDITION)
  t.regex(err.details, /cannot read the key info file .*nokey-info\.json \(ENOENT\)/)
})

test.serial('the Go example request (keyprovider.KeyProviderService/UnWrapKey) parses and reaches key release for testkey000', async (t) => {
  const example = JSON.parse(await readFile(vector('keyprovider', 'unwrap_example.json'), 'utf8')) as { keyprovider_input_json_example: unknown }
  // The example's vault is a real managed HSM; on a machine without SEV-SNP the answer is that attestation is unavailable, not a bad request.
  const err = await refusal(call(bareClients.keyprovider, 'UnWrapKey', { KeyProviderKeyWrapProtocolInput: Buffer.from(JSON.stringify(example.keyprovider_input_json_example)) }))
  t.is(err.code, status.FAILED_PRECONDITION)
  t.regex(err.details, /^secure key release failed: no SEV-SNP report source found/)
  t.true(logLines.some((l) => l.includes('"kid":"testkey000"') && l.includes('accmhsm.managedhsm.azure.net') && l.includes('sharedeus2.eus2.attest.azure.net')))
})

test.serial("server reflection lists both services and describes each package's field names", async (t) => {
  const require = createRequire(import.meta.url)
  const reflectionProto = path.join(path.dirname(require.resolve('@grpc/reflection')), '../proto/grpc/reflection/v1/reflection.proto')
  await readFile(reflectionProto)
  const grpcObject = loadPackageDefinition(loadSync(reflectionProto, { keepCase: true }))
  const Reflection = (((grpcObject.grpc as GrpcObject).reflection as GrpcObject).v1 as GrpcObject).ServerReflection as ServiceClientConstructor
  const client = new Reflection(`localhost:${server.port}`, credentials.createInsecure())
  t.teardown(() => client.close())
  const ask = (request: Reply) =>
    new Promise<Reply>((resolve, reject) => {
      const stream = (client as unknown as { ServerReflectionInfo(): NodeJS.EventEmitter & { write(r: Reply): void; end(): void } }).ServerReflectionInfo()
      stream.on('data', (d: Reply) => {
        resolve(d)
        stream.end()
      })
      stream.on('error', reject)
      stream.write(request)
    })
  const list = (await ask({ list_services: '*' })) as { list_services_response: { service: { name: string }[] } }
  const names = list.list_services_response.service.map((x) => x.name)
  t.true(names.includes('key_provider.KeyProviderService'), names.join(', '))
  t.true(names.includes('keyprovider.KeyProviderService'), names.join(', '))
  for (const [symbol, field] of [
    ['key_provider.KeyProviderService', 'key_provider_key_wrap_protocol_input'],
    ['keyprovider.KeyProviderService', 'KeyProviderKeyWrapProtocolInput'],
  ]) {
    const file = (await ask({ file_containing_symbol: symbol })) as { file_descriptor_response: { file_descriptor_proto: Buffer[] } }
    const descriptors = Buffer.concat(file.file_descriptor_response.file_descriptor_proto)
    t.true(descriptors.includes(field!), `${symbol}'s descriptor names the field ${field}`)
    t.true(descriptors.includes('UnWrapKey') && descriptors.includes('GetAttestationData'))
  }
})

test.serial('a call whose deadline passes aborts the key release in flight (the connection to MAA is closed)', async (t) => {
  const { createServer } = await import('node:net')
  let closed!: () => void
  const connectionClosed = new Promise<void>((resolve) => {
    closed = resolve
  })
  // An MAA that accepts connections and never answers.
  const silent = createServer((socket) => {
    socket.on('close', closed).resume()
  })
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve))
  t.teardown(() => silent.close())
  const port = (silent.address() as { port: number }).port
  const annotation = goAnnotation('wrapping-key', Buffer.from('x')).replace(`"attester_endpoint":"${s.maa.endpoint}"`, `"attester_endpoint":"127.0.0.1:${port}"`)
  const err = await refusal(call(clients.key_provider, 'UnWrapKey', { key_provider_key_wrap_protocol_input: unwrapInput(annotation) }, 1500))
  t.is(err.code, status.DEADLINE_EXCEEDED)
  const started = Date.now()
  await connectionClosed
  t.true(Date.now() - started < 5000, 'closed at once, not after the 30 s request timeout')
})

/** Local addresses (hex, as /proc/net/tcp{,6} has them) of the sockets listening on a TCP port. */
async function listeningAddresses(port: number): Promise<string[]> {
  return (await listeningSockets()).filter((s) => s.port === port).map((s) => s.address)
}

test.serial('it listens on loopback only, unless --unsafe-listen names another address', async (t) => {
  const loopback = new Set(['0100007F', '00000000000000000000000001000000'])
  const addresses = await listeningAddresses(server.port)
  t.true(addresses.length > 0)
  t.true(
    addresses.every((a) => loopback.has(a)),
    `listening on ${addresses.join(', ')}`,
  )
  const logger = pino(
    { level: 'warn' },
    {
      write: (l: string) => {
        logLines.push(l)
      },
    },
  )
  const open = await listenKeyProvider(new KeyProviderService({ attestation: new AttestationContext({ attestation: 'auto', uvm: s.uvm }), logger }), {
    port: 0,
    unsafeListen: '0.0.0.0',
    logger,
  })
  t.teardown(() => open.close())
  t.deepEqual(await listeningAddresses(open.port), ['00000000'])
  t.true(logLines.some((l) => l.includes('listens beyond loopback (--unsafe-listen)')))
})

test.serial('bytes that are not the request message (a truncated protobuf) are INVALID_ARGUMENT, not INTERNAL', async (t) => {
  const { Client } = await import('@grpc/grpc-js')
  const client = new Client(`localhost:${server.port}`, credentials.createInsecure())
  t.teardown(() => client.close())
  // Field 1, length-delimited, claims 100 bytes and carries 3.
  const truncated = Buffer.from([0x0a, 100, 0x61, 0x62, 0x63])
  for (const pkg of PACKAGES) {
    const err = await new Promise<{ code?: number; details?: string }>((resolve) => {
      client.makeUnaryRequest(
        `/${pkg}.KeyProviderService/UnWrapKey`,
        (b: Buffer) => b,
        (b: Buffer) => b,
        truncated,
        (e) => resolve(e ?? {}),
      )
    })
    t.is(err.code, status.INVALID_ARGUMENT, `${pkg}: ${err.details}`)
    t.regex(err.details ?? '', new RegExp(`the request is not a ${pkg}\\.KeyProviderService/UnWrapKey request message \\(protobuf\\)`))
  }
})
