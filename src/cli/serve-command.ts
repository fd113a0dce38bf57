import { DEFAULT_TCTI } from '../tpm/vtpm.js'
import type { Argv } from 'yargs'
import { commandLogger } from './command-logger.js'
import { skrConfigOf } from './skr-config.js'
import { ATTESTATION_MODES } from '../attestation/providers/provider.js'
import { defaultSimulatedStateDir } from '../attestation/providers/simulated.js'
import { AttestationContext } from '../attestation/context.js'
import { UsageError } from './fail.js'
import { wrapFile } from './wrap-command.js'
import { startSkrServices } from './skr-services.js'
import { vaultHostsFromEnv } from '../skr/vault-hosts.js'
import { MaaUserAgent } from '../maa/user-agent.js'

export const SERVER_TYPES = ['http', 'grpc'] as const

/**
 * `encfs serve`: the skr sidecar's job, with its flags and environment, and no filesystems:
 * the HTTP API, or with -server_type grpc the keyprovider gRPC service instead (as skr), or
 * both with --grpc-port (as Go's AASP), or with -infile/-keypath/-outfile skr's offline wrap.
 */
export function serveCommand<T>(y: Argv<T>): Argv<T> {
  const env = process.env
  return y.command(
    'serve',
    "serve the skr attestation and key release API (the Go skr sidecar's job), or the keyprovider gRPC service, or both (--grpc-port); flags and env as skr: -base64/SkrSideCarArgs, -port/Port, -server_type/ServerType (http or grpc)",
    (c) =>
      c
        .parserConfiguration({ 'short-option-groups': false })
        .option('base64', {
          type: 'string',
          default: env.SkrSideCarArgs || undefined,
          describe: 'standard base64 of {"certcache":…,"identity":…,"maaconfig":…} (env SkrSideCarArgs)',
        })
        .option('port', { type: 'number', default: Number(env.Port) || 8080, describe: 'port on localhost (env Port)' })
        .option('server_type', {
          type: 'string',
          choices: SERVER_TYPES,
          default: env.ServerType?.toLowerCase() || 'http',
          coerce: (v: string) => v.toLowerCase(),
          describe: 'http: the attestation and key release API; grpc: the keyprovider gRPC service (env ServerType)',
        })
        .option('grpc-port', {
          type: 'number',
          default: Number(env.EncfsGrpcPort) || undefined,
          describe: 'also serve the keyprovider gRPC service on this port, next to the HTTP API, in the same process (as Go AASP did; env EncfsGrpcPort)',
        })
        .option('infile', { type: 'string', describe: 'offline wrap, as skr -infile: the file to wrap (with -keypath and -outfile; no server)' })
        .option('keypath', { type: 'string', describe: "offline wrap: the wrapping key's path without -info.json" })
        .option('outfile', { type: 'string', describe: 'offline wrap: where to write the base64 annotation' })
        .option('attestation', { type: 'string', choices: ATTESTATION_MODES, default: env.EncfsAttestation || 'auto' })
        .option('simulated-state', { type: 'string', default: defaultSimulatedStateDir() })
        .option('tpm-tcti', { type: 'string', default: env.EncfsTpmTcti || DEFAULT_TCTI, describe: 'the TPM of --attestation vtpm, as a tpm2-tss TCTI (env EncfsTpmTcti)' })
        .option('unsafe-listen', { type: 'string', describe: 'listen on this address instead of loopback (exposes key release)' })
        .option('allowTestingMismatchedTCB', {
          type: 'boolean',
          default: false,
          describe: "testing only, as skr: the host certificate's TCBM is taken as ffffffff, so the first key release fetches the chain from the certcache",
        }),
    async (args) => {
      const logger = commandLogger(args, 'encfs-serve')
      const info = args.base64 ? skrConfigOf(args.base64, args.base64 === env.SkrSideCarArgs ? 'SkrSideCarArgs' : '-base64', logger) : {}
      // The simulated chip's directory from EncfsSimulatedState, as remotefs reads it, unless -simulated-state names one.
      const simulatedStateDir = args['simulated-state'] === defaultSimulatedStateDir() ? env.EncfsSimulatedState || args['simulated-state'] : args['simulated-state']
      const testingMismatchedTcb = args.allowTestingMismatchedTCB
      if (testingMismatchedTcb) logger.warn("-allowTestingMismatchedTCB: FOR TESTING ONLY, the host certificate's TCBM is taken as ffffffff")
      const attestation = new AttestationContext({
        attestation: args.attestation,
        simulatedStateDir,
        tpmTcti: args['tpm-tcti'],
        certcache: info.certcache,
        logger,
        testingMismatchedTcb,
      })
      if (args.infile || args.keypath || args.outfile) {
        if (!args.infile || !args.keypath || !args.outfile) throw new UsageError('offline wrap needs all of -infile, -keypath and -outfile (or use encfs wrap)')
        return wrapFile({ infile: args.infile, keypath: args.keypath, outfile: args.outfile, logger })
      }
      const grpcOnly = args.server_type === 'grpc'
      if (grpcOnly && args['grpc-port'] !== undefined) throw new UsageError('--grpc-port serves gRPC next to the HTTP API: with -server_type grpc, -port is already the gRPC port')
      const services = await startSkrServices({
        attestation,
        identity: info.identity,
        maaUserAgent: new MaaUserAgent(info.maaconfig?.user_agent),
        vaultHosts: vaultHostsFromEnv(env),
        ...(grpcOnly ? {} : { http: { port: args.port, flag: '-port' } }),
        ...(grpcOnly ? { grpc: { port: args.port, flag: '-port' } } : args['grpc-port'] !== undefined ? { grpc: { port: args['grpc-port'], flag: '--grpc-port' } } : {}),
        unsafeListen: args['unsafe-listen'],
        logger,
      })
      // Set up attestation now so /status names the provider, and a missing device shows at start.
      await attestation.ready().catch((err: Error) => logger.error({ err }, 'attestation is not available; attestation and key requests will fail until it is'))
      const serving = grpcOnly
        ? 'the keyprovider gRPC service'
        : args['grpc-port'] !== undefined
          ? 'the attestation and key release API and the keyprovider gRPC service'
          : 'the attestation and key release API'
      logger.warn({ port: args.port, serverType: args.server_type, ...(args['grpc-port'] !== undefined ? { grpcPort: args['grpc-port'] } : {}) }, `ready: serving ${serving}`)
      await new Promise<void>((resolve) => {
        process.once('SIGINT', resolve)
        process.once('SIGTERM', resolve)
      })
      await services.close()
    },
  )
}
