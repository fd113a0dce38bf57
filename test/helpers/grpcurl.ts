// A stand-in for `grpcurl -plaintext [-v] -d JSON HOST:PORT package.Service.Method`, for tests that
// run shell scripts written for grpcurl (examples/aasp/unwrap.sh) where grpcurl is not installed:
// it is packaged neither for Debian nor npm. It makes the same call with grpc-js over TCP from the
// repository's .proto files and prints the answer as grpcurl does: JSON, bytes as standard base64.
import type { ServiceError } from '@grpc/grpc-js'
import { pathToFileURL } from 'node:url'
import { loadKeyProviderProtos, PACKAGES, type KeyProviderPackage } from '../../src/keyprovider-grpc/server.js'
import { call, keyProviderClients, type Message } from './keyprovider-client.js'

interface Field {
  name: string
  type: string
}

function fieldsOf(pkg: KeyProviderPackage, method: string, which: 'requestType' | 'responseType'): Field[] {
  const service = loadKeyProviderProtos()[`${pkg}.KeyProviderService`] as unknown as Record<string, Record<string, { type: { field: Field[] } }>>
  const m = service[method]
  if (!m) throw new Error(`grpcurl stand-in: ${pkg}.KeyProviderService has no method ${method}`)
  return m[which]!.type.field
}

export async function grpcurl(argv: string[]): Promise<string> {
  const args = argv.filter((a) => a !== '-plaintext' && a !== '-v')
  const d = args.indexOf('-d')
  const data = d >= 0 ? (JSON.parse(args.splice(d, 2)[1] ?? '{}') as Message) : {}
  const [address, full] = args
  const match = /^(\w+)\.KeyProviderService\.(\w+)$/.exec(full ?? '')
  const pkg = match?.[1] as KeyProviderPackage | undefined
  if (!address || !match || !pkg || !PACKAGES.includes(pkg))
    throw new Error(`grpcurl stand-in: usage: grpcurl -plaintext -d JSON HOST:PORT <package>.KeyProviderService.<Method>, got ${argv.join(' ')}`)
  const method = match[2]!
  const request: Message = {}
  for (const f of fieldsOf(pkg, method, 'requestType')) {
    const v = data[f.name]
    if (v !== undefined) request[f.name] = f.type === 'TYPE_BYTES' ? Buffer.from(String(v), 'base64') : v
  }
  const clients = keyProviderClients(address)
  try {
    const reply = await call(clients[pkg], method, request)
    const out: Message = {}
    for (const f of fieldsOf(pkg, method, 'responseType')) {
      const v = reply[f.name]
      if (v !== undefined && !(Buffer.isBuffer(v) && v.length === 0) && v !== '') out[f.name] = Buffer.isBuffer(v) ? v.toString('base64') : v
    }
    return `${JSON.stringify(out, null, 2)}\n`
  } finally {
    clients.close()
  }
}

// Run as a program (a `grpcurl` wrapper on PATH execs node on this file).
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  grpcurl(process.argv.slice(2)).then(
    (out) => process.stdout.write(out),
    (err: ServiceError | Error) => {
      process.stderr.write(`ERROR:\n  ${'code' in err ? `Code: ${err.code}\n  Message: ${err.details}` : err.message}\n`)
      process.exitCode = 1
    },
  )
}
