import { credentials, loadPackageDefinition, type Client, type GrpcObject, type ServiceClientConstructor, type ServiceError } from '@grpc/grpc-js'
import { loadKeyProviderProtos, PACKAGES, type KeyProviderPackage } from '../../src/keyprovider-grpc/server.js'

export type Message = Record<string, unknown>

/** grpc-js clients for both keyprovider packages, from the repository's .proto files. */
export function keyProviderClients(address: string): Record<KeyProviderPackage, Client> & { close(): void } {
  const grpcObject = loadPackageDefinition(loadKeyProviderProtos())
  const clients = Object.fromEntries(
    PACKAGES.map((pkg) => {
      const Ctor = (grpcObject[pkg] as GrpcObject).KeyProviderService as ServiceClientConstructor
      return [pkg, new Ctor(address, credentials.createInsecure())]
    }),
  ) as unknown as Record<KeyProviderPackage, Client>
  return {
    ...clients,
    close: () => {
      for (const c of Object.values(clients)) c.close()
    },
  }
}

/** One unary call; rejects with the ServiceError (code, details). */
export function call(client: Client, method: string, request: Message, deadlineMs = 60_000): Promise<Message> {
  return new Promise((resolve, reject) => {
    const fn = (client as unknown as Record<string, (req: Message, meta: object, cb: (err: ServiceError | null, res: Message) => void) => void>)[method]
    if (!fn) throw new Error(`no method ${method}`)
    fn.call(client, request, { deadline: Date.now() + deadlineMs }, (err, res) => (err ? reject(err) : resolve(res)))
  })
}

/** The ServiceError of a call that must fail. */
export async function refusal(p: Promise<unknown>): Promise<ServiceError> {
  try {
    await p
  } catch (err) {
    return err as ServiceError
  }
  throw new Error('the call succeeded; a refusal was expected')
}

export const FIELD: Record<KeyProviderPackage, { in: string; out: string; report: string; reportOut: string; data: string }> = {
  key_provider: {
    in: 'key_provider_key_wrap_protocol_input',
    out: 'key_provider_key_wrap_protocol_output',
    report: 'report_data_hex_string',
    reportOut: 'report_hex_string',
    data: 'b64_runtime_data_string',
  },
  keyprovider: {
    in: 'KeyProviderKeyWrapProtocolInput',
    out: 'KeyProviderKeyWrapProtocolOutput',
    report: 'reportDataHexString',
    reportOut: 'reportHexString',
    data: 'b64RuntimeDataString',
  },
}

const b64 = (x: string | Buffer) => Buffer.from(x).toString('base64')

/** The keyunwrap JSON as ocicrypt marshals it (keywrapparams present with null members). */
export function unwrapInput(annotation: Buffer | string, agent = 'skr'): Buffer {
  return Buffer.from(
    JSON.stringify({
      op: 'keyunwrap',
      keywrapparams: { ec: null, optsdata: null },
      keyunwrapparams: { dc: { Parameters: { 'attestation-agent': [b64(agent)] } }, annotation: b64(annotation) },
    }),
  )
}

/** The optsdata of a keyunwrap answer. */
export function unwrappedSecret(output: unknown): Buffer {
  const json = JSON.parse(Buffer.from(output as Buffer).toString()) as { keyunwrapresults: { optsdata: string } }
  return Buffer.from(json.keyunwrapresults.optsdata, 'base64')
}
