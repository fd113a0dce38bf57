import type { Argv } from 'yargs'
import { commandLogger } from './command-logger.js'
import { decodeSidecarArgs } from '../config/decode.js'
import { validateSkrConfig } from '../config/validate.js'
import { ATTESTATION_MODES } from '../attestation/providers/provider.js'
import { defaultSimulatedStateDir } from '../attestation/providers/simulated.js'
import { AttestationContext } from '../attestation/context.js'
import { ServiceStatus } from '../api/status.js'
import { buildApi, listenApi } from '../api/server.js'
import { EncfsError } from '../errors.js'

/** `encfs serve`: the skr sidecar's job, with its flags and environment, and no filesystems. */
export function serveCommand<T>(y: Argv<T>): Argv<T> {
  const env = process.env
  return y.command(
    'serve',
    'serve the skr attestation and key release API alone (the Go skr sidecar\'s job); flags and env as skr: -base64/SkrSideCarArgs, -port/Port',
    (c) => c
      .parserConfiguration({ 'short-option-groups': false })
      .option('base64', { type: 'string', default: env.SkrSideCarArgs || undefined, describe: 'standard base64 of {"certcache":…,"identity":…,"maaconfig":…} (env SkrSideCarArgs)' })
      .option('port', { type: 'number', default: Number(env.Port) || 8080, describe: 'port on localhost (env Port)' })
      .option('attestation', { type: 'string', choices: ATTESTATION_MODES, default: env.EncfsAttestation || 'auto' })
      .option('simulated-state', { type: 'string', default: defaultSimulatedStateDir() })
      .option('unsafe-listen', { type: 'string', describe: 'listen on this address instead of loopback (exposes key release)' }),
    async (args) => {
      const logger = commandLogger(args, 'encfs-serve')
      const info = args.base64 ? validateSkrConfig(decodeSidecarArgs(args.base64, args.base64 === env.SkrSideCarArgs ? 'SkrSideCarArgs' : '-base64'), 'the skr configuration') : {}
      const attestation = new AttestationContext({ attestation: args.attestation, simulatedStateDir: args['simulated-state'], certcache: info.certcache, logger })
      const status = new ServiceStatus()
      const api = buildApi({ status, attestation, identity: info.identity, maaUserAgent: info.maaconfig?.user_agent, logger })
      await listenApi(api, { port: args.port, unsafeListen: args['unsafe-listen'], logger }).catch((err: NodeJS.ErrnoException) => {
        throw new EncfsError('API_LISTEN_FAILED', `cannot serve the API on port ${args.port}: ${err.code === 'EADDRINUSE' ? 'the port is in use' : err.message}; pick another with -port`, { cause: err })
      })
      // Set up attestation now so /status names the provider, and a missing device shows at start.
      await attestation.ready().catch((err: Error) => logger.error({ err }, 'attestation is not available; /attest and /key requests will fail until it is'))
      logger.warn({ port: args.port }, 'ready: serving the attestation and key release API')
      await new Promise<void>((resolve) => {
        process.once('SIGINT', resolve)
        process.once('SIGTERM', resolve)
      })
      await api.close()
    },
  )
}
