import { DEFAULT_TCTI } from '../tpm/vtpm.js'
import { vaultHostsFromEnv } from '../skr/vault-hosts.js'
import yargs from 'yargs'
import { logOptions, type Logger } from '../log/logger.js'
import { startProgram } from './command-logger.js'
import { asProgram, exitWith, UsageError } from './fail.js'
import { ATTESTATION_MODES } from '../attestation/providers/provider.js'
import { defaultSimulatedStateDir } from '../attestation/providers/simulated.js'
import { AttestationContext } from '../attestation/context.js'
import { MaaUserAgent } from '../maa/user-agent.js'
import { isLoopback } from '../config/validate.js'
import { AASP_AGENT_NAME } from '../keyprovider-grpc/protocol.js'
import { skrConfigOf } from './skr-config.js'
import { wrapFile } from './wrap-command.js'
import { startSkrServices } from './skr-services.js'

/** Go's AASP defaults: gRPC on 127.0.0.1:50000, the HTTP API on localhost:8080, log level debug. */
export const AASP_DEFAULTS = { keyproviderSock: '127.0.0.1:50000', httpPort: '8080', loglevel: 'debug' } as const

/**
 * `-keyprovider_sock host:port`, as Go AASP gave it to net.Listen. A loopback host listens on
 * loopback (127.0.0.1 and ::1); any other host (or none, which Go read as every interface) would
 * expose key release to the network, so it needs --unsafe-listen, as the rest of encfs.
 */
export function keyproviderPort(sock: string, unsafeListen: string | undefined): number {
  const m = /^(?:\[([^\]]*)\]|([^:]*)):(\d{1,5})$/.exec(sock.trim())
  const port = Number(m?.[3])
  if (!m || port > 65535) throw new UsageError(`-keyprovider_sock ${JSON.stringify(sock)} is not host:port (Go AASP's default is ${AASP_DEFAULTS.keyproviderSock})`)
  const host = m[1] ?? m[2] ?? ''
  if (!isLoopback(host) && !unsafeListen) {
    throw new UsageError(
      `-keyprovider_sock ${sock} would listen beyond loopback, where anyone who reaches it can unwrap this pod's secrets: use 127.0.0.1:${port}, or add --unsafe-listen ${host || '0.0.0.0'} if that is meant`,
    )
  }
  return port
}

function httpPort(value: string): number {
  const port = Number(value)
  if (!/^\d{1,5}$/.test(value.trim()) || port > 65535)
    throw new UsageError(`-http_keyprovider_sock ${JSON.stringify(value)} is not a port (Go AASP's default is ${AASP_DEFAULTS.httpPort})`)
  return port
}

export function parseAaspArgs(argv: string[], env: NodeJS.ProcessEnv = process.env) {
  return asProgram(
    yargs(argv)
      .scriptName('aasp')
      .usage(
        '$0 [-aasp-cert-cache-args B64] [-keyprovider_sock 127.0.0.1:50000] [-http_keyprovider_sock 8080] [-loglevel L]\n' +
          '$0 -infile F -keypath P -outfile O\n\n' +
          'Go\'s AASP sidecar: the keyprovider gRPC service (attestation agent "aasp") and the attestation and key release HTTP API in one process; or an offline wrap.',
      )
      // Go's flag package: single-dash long flags, names with - and _ kept as they are.
      .parserConfiguration({ 'short-option-groups': false, 'camel-case-expansion': false })
      .options({ ...logOptions(env), loglevel: { ...logOptions(env).loglevel, default: env.LogLevel || AASP_DEFAULTS.loglevel } })
      .option('aasp-cert-cache-args', {
        type: 'string',
        alias: 'base64',
        default: env.AaspSideCarArgs || undefined,
        describe: 'standard base64 of {"certcache":…,"identity":…,"maaconfig":…} (env AaspSideCarArgs)',
      })
      .option('keyprovider_sock', { type: 'string', default: AASP_DEFAULTS.keyproviderSock, describe: 'host:port of the keyprovider gRPC service (loopback)' })
      .option('grpc-port', { type: 'number', describe: "as encfs serve: the keyprovider gRPC service's port on loopback (instead of -keyprovider_sock)" })
      .option('http_keyprovider_sock', {
        type: 'string',
        alias: 'port',
        default: AASP_DEFAULTS.httpPort,
        describe: 'port of the attestation and key release HTTP API on localhost',
      })
      .option('infile', { type: 'string', describe: 'offline wrap: the file to wrap (with -keypath and -outfile; no server)' })
      .option('keypath', { type: 'string', describe: "offline wrap: the wrapping key's path without -info.json" })
      .option('outfile', { type: 'string', describe: 'offline wrap: where to write the base64 annotation' })
      .option('attestation', { type: 'string', choices: ATTESTATION_MODES, default: env.EncfsAttestation || 'auto', describe: 'SEV-SNP report source (env EncfsAttestation)' })
      .option('simulated-state', { type: 'string', default: env.EncfsSimulatedState || defaultSimulatedStateDir(env), describe: 'state directory of the simulated SNP chip' })
      .option('tpm-tcti', { type: 'string', default: env.EncfsTpmTcti || DEFAULT_TCTI, describe: 'the TPM of --attestation vtpm, as a tpm2-tss TCTI (env EncfsTpmTcti)' })
      .option('unsafe-listen', { type: 'string', describe: 'listen on this address instead of loopback (exposes key release and unwrapping)' })
      .option('allowTestingMismatchedTCB', { type: 'boolean', default: false, describe: "testing only, as skr: the host certificate's TCBM is taken as ffffffff" }),
  ).parseSync()
}

type AaspArgs = ReturnType<typeof parseAaspArgs>

/** Both services until SIGTERM or SIGINT. */
async function serve(args: AaspArgs, logger: Logger): Promise<void> {
  const grpcPort = args['grpc-port'] ?? keyproviderPort(args.keyprovider_sock, args['unsafe-listen'])
  const port = httpPort(args.http_keyprovider_sock)
  const b64 = args['aasp-cert-cache-args']
  if (!b64)
    logger.info(
      'no AaspSideCarArgs (-aasp-cert-cache-args): the certificates come from the platform (UVM_HOST_AMD_CERTIFICATE or the security context), else the local THIM endpoint',
    )
  const info = b64 ? skrConfigOf(b64, b64 === process.env.AaspSideCarArgs ? 'AaspSideCarArgs' : '-aasp-cert-cache-args', logger) : {}
  // As Go AASP: the managed identity's client id comes from AZURE_CLIENT_ID (workload identity sets it).
  const clientId = process.env.AZURE_CLIENT_ID
  if (!clientId) logger.warn('Warning: Env AZURE_CLIENT_ID is not set')
  const identity = clientId ? { ...info.identity, client_id: clientId } : info.identity
  if (args.allowTestingMismatchedTCB) logger.warn("-allowTestingMismatchedTCB: FOR TESTING ONLY, the host certificate's TCBM is taken as ffffffff")
  const attestation = new AttestationContext({
    attestation: args.attestation,
    simulatedStateDir: args['simulated-state'],
    tpmTcti: args['tpm-tcti'],
    certcache: info.certcache,
    logger,
    testingMismatchedTcb: args.allowTestingMismatchedTCB,
  })
  const services = await startSkrServices({
    attestation,
    identity,
    maaUserAgent: new MaaUserAgent(info.maaconfig?.user_agent),
    vaultHosts: vaultHostsFromEnv(),
    grpc: { port: grpcPort, flag: '-keyprovider_sock' },
    http: { port, flag: '-http_keyprovider_sock' },
    agentName: AASP_AGENT_NAME,
    unsafeListen: args['unsafe-listen'],
    logger,
  })
  await attestation.ready().catch((err: Error) => logger.error({ err }, 'attestation is not available; attestation, key and unwrap requests will fail until it is'))
  logger.info(`server listening at ${services.grpcAddresses?.join(', ')}`)
  logger.warn(
    { grpc: services.grpcAddresses, port },
    `ready: serving the keyprovider gRPC service (attestation agent "${AASP_AGENT_NAME}") on ${services.grpcAddresses?.join(', ')} and the attestation and key release API on ${args['unsafe-listen'] ?? 'localhost'}:${port}`,
  )
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve)
    process.once('SIGTERM', resolve)
  })
  await services.close()
}

export async function main(argv: string[]): Promise<void> {
  const started = startProgram('aasp', () => parseAaspArgs(argv))
  if (!started) return
  const { args, logger } = started
  try {
    logger.info(`Starting ${process.argv[1] ?? 'aasp'}...`)
    if (args.infile || args.keypath || args.outfile) {
      if (!args.infile || !args.keypath || !args.outfile) throw new UsageError('offline wrap needs all of -infile, -keypath and -outfile')
      await wrapFile({ infile: args.infile, keypath: args.keypath, outfile: args.outfile, logger })
      process.stderr.write(`Success! The wrapped data is saved to ${args.outfile}\n`)
      return
    }
    await serve(args, logger)
  } catch (err) {
    exitWith('aasp', err)
  }
}
