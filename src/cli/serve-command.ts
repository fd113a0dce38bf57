import type { Argv } from 'yargs'
import { commandLogger } from './command-logger.js'
import { decodeSidecarArgs } from '../config/decode.js'
import { validateSkrConfig } from '../config/validate.js'
import { ATTESTATION_MODES } from '../attestation/providers/provider.js'
import { defaultSimulatedStateDir } from '../attestation/providers/simulated.js'
import { AttestationContext } from '../attestation/context.js'
import { ServiceStatus } from '../api/status.js'
import { buildApi, listenApi } from '../api/server.js'
import { vaultHostsFromEnv } from '../skr/vault-hosts.js'
import { EncfsError } from '../errors/encfs-error.js'
import { UsageError } from './fail.js'
import { KeyProviderService } from '../keyprovider/service.js'
import { listenKeyProvider } from '../keyprovider/server.js'
import { wrapFile } from './wrap-command.js'

export const SERVER_TYPES = ['http', 'grpc'] as const

/**
 * `encfs serve`: the skr sidecar's job, with its flags and environment, and no filesystems:
 * the HTTP API, or with -server_type grpc the keyprovider gRPC service instead (as skr), or
 * with -infile/-keypath/-outfile skr's offline wrap.
 */
export function serveCommand<T>(y: Argv<T>): Argv<T> {
  const env = process.env
  return y.command(
    'serve',
    "serve the skr attestation and key release API alone (the Go skr sidecar's job); flags and env as skr: -base64/SkrSideCarArgs, -port/Port, -server_type/ServerType (http or grpc)",
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
        .option('infile', { type: 'string', describe: 'offline wrap, as skr -infile: the file to wrap (with -keypath and -outfile; no server)' })
        .option('keypath', { type: 'string', describe: "offline wrap: the wrapping key's path without -info.json" })
        .option('outfile', { type: 'string', describe: 'offline wrap: where to write the base64 annotation' })
        .option('attestation', { type: 'string', choices: ATTESTATION_MODES, default: env.EncfsAttestation || 'auto' })
        .option('simulated-state', { type: 'string', default: defaultSimulatedStateDir() })
        .option('unsafe-listen', { type: 'string', describe: 'listen on this address instead of loopback (exposes key release)' })
        .option('allowTestingMismatchedTCB', {
          type: 'boolean',
          default: false,
          describe: "testing only, as skr: the host certificate's TCBM is taken as ffffffff, so the first key release fetches the chain from the certcache",
        }),
    async (args) => {
      const logger = commandLogger(args, 'encfs-serve')
      const info = args.base64 ? validateSkrConfig(decodeSidecarArgs(args.base64, args.base64 === env.SkrSideCarArgs ? 'SkrSideCarArgs' : '-base64'), 'the skr configuration') : {}
      // The simulated chip's directory from EncfsSimulatedState, as remotefs reads it, unless -simulated-state names one.
      const simulatedStateDir = args['simulated-state'] === defaultSimulatedStateDir() ? env.EncfsSimulatedState || args['simulated-state'] : args['simulated-state']
      const testingMismatchedTcb = args.allowTestingMismatchedTCB
      if (testingMismatchedTcb) logger.warn("-allowTestingMismatchedTCB: FOR TESTING ONLY, the host certificate's TCBM is taken as ffffffff")
      const attestation = new AttestationContext({ attestation: args.attestation, simulatedStateDir, certcache: info.certcache, logger, testingMismatchedTcb })
      if (args.infile || args.keypath || args.outfile) {
        if (!args.infile || !args.keypath || !args.outfile) throw new UsageError('offline wrap needs all of -infile, -keypath and -outfile (or use encfs wrap)')
        return wrapFile({ infile: args.infile, keypath: args.keypath, outfile: args.outfile, logger })
      }
      let close: () => Promise<void>
      const vaultHosts = vaultHostsFromEnv(env)
      if (args.server_type === 'grpc') {
        const grpc = await listenKeyProvider(new KeyProviderService({ attestation, identity: info.identity, vaultHosts, logger }), {
          port: args.port,
          unsafeListen: args['unsafe-listen'],
          logger,
        }).catch((err: Error) => {
          throw new EncfsError('GRPC_LISTEN_FAILED', `${err.message}; pick another port with -port`, { cause: err })
        })
        close = grpc.close
      } else {
        const api = buildApi({ status: new ServiceStatus(), attestation, identity: info.identity, vaultHosts, maaUserAgent: info.maaconfig?.user_agent, logger })
        await listenApi(api, { port: args.port, unsafeListen: args['unsafe-listen'], logger }).catch((err: NodeJS.ErrnoException) => {
          throw new EncfsError(
            'API_LISTEN_FAILED',
            `cannot serve the API on port ${args.port}: ${err.code === 'EADDRINUSE' ? 'the port is in use' : err.message}; pick another with -port`,
            { cause: err },
          )
        })
        close = () => api.close()
      }
      // Set up attestation now so /status names the provider, and a missing device shows at start.
      await attestation.ready().catch((err: Error) => logger.error({ err }, 'attestation is not available; attestation and key requests will fail until it is'))
      logger.warn(
        { port: args.port, serverType: args.server_type },
        args.server_type === 'grpc' ? 'ready: serving the keyprovider gRPC service' : 'ready: serving the attestation and key release API',
      )
      await new Promise<void>((resolve) => {
        process.once('SIGINT', resolve)
        process.once('SIGTERM', resolve)
      })
      await close()
    },
  )
}
