import path from 'node:path'
import { fileURLToPath } from 'node:url'
import {
  Server,
  ServerCredentials,
  setLogger,
  setLogVerbosity,
  logVerbosity,
  status,
  type ServiceDefinition,
  type UntypedServiceImplementation,
  type sendUnaryData,
  type ServerUnaryCall,
} from '@grpc/grpc-js'
import { loadSync, type PackageDefinition } from '@grpc/proto-loader'
import { ReflectionService } from '@grpc/reflection'
import type { Logger } from '../log/logger.js'
import { EncfsError } from '../errors/encfs-error.js'
import type { KeyProviderService } from './service.js'
import type { CombinedEvidence } from '../attestation/combined.js'
import { grpcStatusOf } from './status.js'

/** The .proto files, shipped next to dist/ (proto/keyprovider in the repository and the image). */
export const PROTO_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../proto/keyprovider')
export const PROTO_FILES = ['key_provider.proto', 'keyprovider.proto'] as const

/** The two packages clients call; the same methods, wire-identical messages, different names. */
export const PACKAGES = ['key_provider', 'keyprovider'] as const
export type KeyProviderPackage = (typeof PACKAGES)[number]

interface FieldNames {
  wrapIn: string
  wrapOut: string
  reportIn: string
  reportOut: string
  dataIn: string
  dataOut: Record<keyof CombinedEvidence, string>
}

// Field names per package; everything else about the two services is shared.
const FIELDS: Record<KeyProviderPackage, FieldNames> = {
  key_provider: {
    wrapIn: 'key_provider_key_wrap_protocol_input',
    wrapOut: 'key_provider_key_wrap_protocol_output',
    reportIn: 'report_data_hex_string',
    reportOut: 'report_hex_string',
    dataIn: 'b64_runtime_data_string',
    dataOut: { endorsedTcb: 'endorsed_tcb', certs: 'certs', report: 'attestation_report', uvmReferenceInfo: 'uvm_reference_info' },
  },
  keyprovider: {
    wrapIn: 'KeyProviderKeyWrapProtocolInput',
    wrapOut: 'KeyProviderKeyWrapProtocolOutput',
    reportIn: 'reportDataHexString',
    reportOut: 'reportHexString',
    dataIn: 'b64RuntimeDataString',
    dataOut: { endorsedTcb: 'endorsedTcb', certs: 'certs', report: 'attestationReport', uvmReferenceInfo: 'uvmReferenceInfo' },
  },
}

export function loadKeyProviderProtos(): PackageDefinition {
  // keepCase: the field names are the contract (grpcurl's JSON uses them).
  return loadSync([...PROTO_FILES], { includeDirs: [PROTO_DIR], keepCase: true, defaults: true })
}

type Message = Record<string, unknown>
type Context = { signal: AbortSignal; logger: Logger }

/** Marks a request whose bytes did not decode: the handler answers it. */
const UNDECODABLE = Symbol('undecodable request')

/**
 * The service with a request decoder that never throws: grpc-js answers a decoder's exception
 * with INTERNAL, as if this side had failed, when it is the client that sent bytes that are not
 * the message. A request that does not decode reaches the handler marked, and is answered
 * INVALID_ARGUMENT there.
 */
function markingUndecodable(definition: ServiceDefinition): ServiceDefinition {
  const methods: Record<string, ServiceDefinition[string]> = {}
  for (const [name, method] of Object.entries(definition)) {
    methods[name] = {
      ...method,
      requestDeserialize: (bytes: Buffer) => {
        try {
          return method.requestDeserialize(bytes) as unknown
        } catch (err) {
          return { [UNDECODABLE]: (err as Error).message }
        }
      },
    }
  }
  return methods as ServiceDefinition
}

function handlers(pkg: KeyProviderPackage, service: KeyProviderService, logger: Logger): UntypedServiceImplementation {
  const f = FIELDS[pkg]
  const unary =
    (method: string, run: (req: Message, ctx: Context) => Promise<Message> | Message) => (call: ServerUnaryCall<Message, Message>, callback: sendUnaryData<Message>) => {
      const started = Date.now()
      const controller = new AbortController()
      call.on('cancelled', () => controller.abort(new Error('the client cancelled the call')))
      const log = logger.child({ rpc: `/${pkg}.KeyProviderService/${method}` })
      log.debug('call')
      const undecodable = (call.request as { [UNDECODABLE]?: string })[UNDECODABLE]
      if (undecodable !== undefined) {
        const details = `the request is not a ${pkg}.KeyProviderService/${method} request message (protobuf): ${undecodable}`
        log.warn({ code: 'INVALID_ARGUMENT', reason: details }, `${method}: refused`)
        return callback({ code: status.INVALID_ARGUMENT, details })
      }
      Promise.resolve()
        .then(() => run(call.request, { signal: controller.signal, logger: log }))
        .then(
          (reply) => {
            log.info({ ms: Date.now() - started }, `${method}: answered`)
            callback(null, reply)
          },
          (err: unknown) => {
            const s = grpcStatusOf(err)
            if (s.code === status.INTERNAL) log.error({ err }, `${method}: internal error`)
            else log.warn({ code: status[s.code], reason: s.details, ms: Date.now() - started }, `${method}: refused`)
            callback({ code: s.code, details: s.details })
          },
        )
    }
  const text = (req: Message, name: string) => (typeof req[name] === 'string' ? req[name] : '')
  const bytes = (req: Message, name: string) => (Buffer.isBuffer(req[name]) ? req[name] : Buffer.alloc(0))
  return {
    SayHello: unary('SayHello', (req) => ({ message: service.sayHello(text(req, 'name')) })),
    WrapKey: unary('WrapKey', async (req, ctx) => ({ [f.wrapOut]: await service.wrapKey(bytes(req, f.wrapIn), ctx) })),
    UnWrapKey: unary('UnWrapKey', async (req, ctx) => ({ [f.wrapOut]: await service.unwrapKey(bytes(req, f.wrapIn), ctx) })),
    GetReport: unary('GetReport', async (req, ctx) => ({ [f.reportOut]: await service.getReport(text(req, f.reportIn), ctx) })),
    GetAttestationData: unary('GetAttestationData', async (req, ctx) => {
      const data = await service.getAttestationData(text(req, f.dataIn), ctx)
      return Object.fromEntries(Object.entries(f.dataOut).map(([k, name]) => [name, data[k as keyof CombinedEvidence]]))
    }),
  }
}

export interface KeyProviderServer {
  port: number
  /** Where it listens, as host:port. */
  addresses: string[]
  close(): Promise<void>
}

export interface ListenOptions {
  port: number
  /** Listen on this address instead of loopback: the operator's explicit choice, as for the HTTP API. */
  unsafeListen?: string
  logger: Logger
}

/**
 * Serves both keyprovider packages and server reflection on one plain-text HTTP/2 port, on
 * loopback only (as skr's `localhost:<port>`) unless `unsafeListen` says otherwise.
 */
export async function listenKeyProvider(service: KeyProviderService, o: ListenOptions): Promise<KeyProviderServer> {
  const logger = o.logger.child({ component: 'grpc' })
  // grpc-js writes its own diagnostics to the console; keep them in the log, at debug level:
  // what matters to the operator reaches it as this module's messages and statuses.
  const library = logger.child({ library: 'grpc-js' })
  setLogger({
    error: (...a: unknown[]) => library.debug(a.join(' ')),
    info: (...a: unknown[]) => library.debug(a.join(' ')),
    debug: (...a: unknown[]) => library.debug(a.join(' ')),
  })
  setLogVerbosity(logVerbosity.DEBUG)
  const definition = loadKeyProviderProtos()
  const server = new Server()
  for (const pkg of PACKAGES) {
    server.addService(markingUndecodable(definition[`${pkg}.KeyProviderService`] as ServiceDefinition), handlers(pkg, service, logger))
  }
  new ReflectionService(definition).addToServer(server)
  const host = o.unsafeListen ? (o.unsafeListen.includes(':') && !o.unsafeListen.startsWith('[') ? `[${o.unsafeListen}]` : o.unsafeListen) : 'localhost'
  if (o.unsafeListen)
    logger.warn({ address: o.unsafeListen }, "the keyprovider gRPC service listens beyond loopback (--unsafe-listen): anyone who reaches it can unwrap this pod's secrets")
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(`${host}:${o.port}`, ServerCredentials.createInsecure(), (err, bound) => (err ? reject(err) : resolve(bound)))
  }).catch((err: Error) => {
    server.forceShutdown()
    const reason = /EADDRINUSE/.test(err.message) ? 'the port is in use' : err.message
    throw new EncfsError('GRPC_LISTEN_FAILED', `cannot serve the keyprovider gRPC service on ${host}:${o.port}: ${reason}`, { cause: err })
  })
  const addresses = [`${host}:${port}`]
  logger.info({ addresses, services: PACKAGES.map((p) => `${p}.KeyProviderService`) }, 'keyprovider gRPC service listening')
  return {
    port,
    addresses,
    close: () =>
      new Promise<void>((resolve) => {
        // Calls in flight (a key release) get a moment to finish; then connections are cut.
        const timer = setTimeout(() => server.forceShutdown(), 5000)
        server.tryShutdown(() => {
          clearTimeout(timer)
          resolve()
        })
      }),
  }
}
