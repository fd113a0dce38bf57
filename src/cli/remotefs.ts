import yargs from 'yargs'
import { createLogger, GO_LOG_LEVELS, type Logger } from '../log/logger.js'
import { loadConfig, redactConfig } from '../config/load.js'
import { planFilesystems } from '../config/plan.js'
import { startRemotefs, type Remotefs } from '../mount/remotefs.js'
import { defaultRuntimeDir } from '../mount/runtime-dir.js'
import { releaseKeyProvider } from '../keys/release-provider.js'
import { AttestationContext } from '../attestation/context.js'
import { ServiceStatus } from '../api/status.js'
import { buildApi, listenApi } from '../api/server.js'
import { EncfsError } from '../errors.js'
import { defaultSimulatedStateDir } from '../attestation/providers/simulated.js'
import { exitWith } from './fail.js'
import { ATTESTATION_MODES } from '../attestation/providers/provider.js'
import { FUSE_BACKEND_MODES, type FuseBackendMode } from '../fuse/backend.js'

function envFlag(value: string | undefined): boolean {
  return value !== undefined && /^(1|true|yes|on)$/i.test(value.trim())
}

export function parseRemotefsArgs(argv: string[], env: NodeJS.ProcessEnv = process.env) {
  return yargs(argv)
    .scriptName('remotefs')
    .usage('$0 [-base64 <b64 of the JSON config>] [-loglevel L] [-logfile F] [options]\n\n' +
      'Mounts the encrypted filesystems described by EncfsSideCarArgs and keeps serving them until SIGTERM.')
    // The Go sidecar takes single-dash long flags (-base64); treat them as long options.
    .parserConfiguration({ 'short-option-groups': false, 'camel-case-expansion': false })
    .option('base64', { type: 'string', describe: 'standard base64 of the JSON configuration (default: env EncfsSideCarArgs)' })
    .option('loglevel', { type: 'string', choices: GO_LOG_LEVELS, default: env.LogLevel || 'warning', describe: 'log level' })
    .option('logfile', { type: 'string', default: env.LogFile || undefined, describe: 'append logs to this file instead of stderr' })
    .option('allow-raw-key', { type: 'boolean', default: envFlag(env.EncfsAllowRawKey), describe: 'honour raw_key (testing only; env EncfsAllowRawKey=true)' })
    .option('unlock', { type: 'string', choices: ['auto', 'kernel', 'userspace'] as const, default: env.EncfsUnlock || 'auto', describe: 'decrypt with dm-crypt (kernel) or in encfs (userspace)' })
    .option('mounter', { type: 'string', choices: ['auto', 'loop', 'fuse2fs'] as const, default: env.EncfsMounter || 'auto', describe: 'mount ext4 with a loop device or with fuse2fs' })
    .option('fuse', { type: 'string', choices: FUSE_BACKEND_MODES, default: env.EncfsFuse || 'auto', describe: 'FUSE backend: libfuse3 (encfs\'s native data plane), libfuse2 (fuse-native), or auto (libfuse3 when its addon loads; env EncfsFuse)' })
    .option('attestation', { type: 'string', choices: ATTESTATION_MODES, default: env.EncfsAttestation || 'auto', describe: 'SEV-SNP report source for key release (env EncfsAttestation); simulated is for the local stack only' })
    .option('lease-wait', { type: 'number', default: Number(env.EncfsLeaseWait) || 75, describe: 'read-write: seconds to wait for another writer\'s blob lease to be released or expire (env EncfsLeaseWait)' })
    .option('port', { type: 'number', default: Number(env.Port) || 8080, describe: 'port of the attestation and key release API on localhost (env Port)' })
    .option('api', { type: 'boolean', default: env.EncfsApi === undefined ? true : envFlag(env.EncfsApi), describe: 'serve the skr attestation and key release API (--no-api to turn it off; env EncfsApi)' })
    .option('unsafe-listen', { type: 'string', describe: 'serve the API on this address instead of loopback (exposes key release to whoever can reach it)' })
    .option('simulated-state', { type: 'string', default: env.EncfsSimulatedState || defaultSimulatedStateDir(env), describe: 'state directory of the simulated SNP chip (--attestation simulated)' })
    .option('runtime-dir', { type: 'string', default: env.EncfsRuntimeDir || defaultRuntimeDir(), describe: 'where the FUSE files live; one remotefs per directory' })
    .strictOptions()
    .help()
    .version(false)
    .exitProcess(false)
    .fail((msg, err) => {
      throw err ?? new Error(msg)
    })
    .parseSync()
}

export async function main(argv: string[]): Promise<void> {
  let args: ReturnType<typeof parseRemotefsArgs>
  try {
    args = parseRemotefsArgs(argv)
  } catch (err) {
    exitWith('remotefs', err, 2)
  }
  if (args.help) return
  let logger: Logger
  try {
    logger = createLogger({ level: args.loglevel, file: args.logfile, name: 'remotefs' })
  } catch (err) {
    exitWith('remotefs', err, 2)
  }

  let remotefs: Remotefs | undefined
  let status: ServiceStatus | undefined
  let api: ReturnType<typeof buildApi> | undefined
  let stopRequested: string | undefined
  const controller = new AbortController()
  const stop = async (signal: string) => {
    if (stopRequested) {
      logger.warn({ signal }, 'already stopping')
      return
    }
    stopRequested = signal
    controller.abort()
    if (!remotefs) return // start-up notices and undoes itself
    logger.warn({ signal }, 'stopping: unmounting all filesystems')
    if (status) status.phase = 'stopping'
    try {
      await api?.close()
      await remotefs.stop()
      logger.warn('stopped cleanly')
      process.exit(0)
    } catch (err) {
      exitWith('remotefs', err)
    }
  }
  process.on('SIGTERM', () => void stop('SIGTERM'))
  process.on('SIGINT', () => void stop('SIGINT'))

  try {
    const { config, source } = loadConfig({ base64: args.base64, env: process.env })
    logger.debug({ source, config: redactConfig(config) }, 'configuration')
    const plans = planFilesystems(config, {
      allowRawKey: args['allow-raw-key'],
      unlock: args.unlock as 'auto' | 'kernel' | 'userspace',
      mounter: args.mounter as 'auto' | 'loop' | 'fuse2fs',
      logger,
    })
    logger.info({ filesystems: plans.length, source }, 'starting')
    const attestation = new AttestationContext({ attestation: args.attestation, simulatedStateDir: args['simulated-state'], certcache: config.azure_info?.certcache, logger })
    status = new ServiceStatus(plans.map((p) => ({ index: p.index, mountPoint: p.mountPoint })))
    if (args.api) {
      api = buildApi({ status, attestation, identity: config.azure_info?.identity, logger })
      await listenApi(api, { port: args.port, unsafeListen: args['unsafe-listen'], logger }).catch((err: NodeJS.ErrnoException) => {
        throw new EncfsError('API_LISTEN_FAILED', `cannot serve the API on port ${args.port}: ${err.code === 'EADDRINUSE' ? 'the port is in use (another skr sidecar?)' : err.message}; pick another with -port, or turn the API off with --no-api`, { cause: err })
      })
    }
    const s = status
    remotefs = await startRemotefs({
      plans,
      onState: (index, state, detail) => s.update(index, state, detail),
      keys: releaseKeyProvider({ attestation, identity: config.azure_info?.identity, logger }),
      runtimeDir: args['runtime-dir'],
      leaseWaitMs: args['lease-wait'] * 1000,
      fuse: args.fuse as FuseBackendMode,
      identity: config.azure_info?.identity,
      logger,
      signal: controller.signal,
    })
  } catch (err) {
    logger.error({ err }, 'start-up failed')
    if (status) status.phase = 'failed'
    await api?.close().catch(() => {})
    exitWith('remotefs', err)
  }
  if (stopRequested) {
    await remotefs.stop().catch((err: unknown) => exitWith('remotefs', err))
    process.exit(0)
  }
  status!.phase = 'ready'
  logger.warn({ mounts: remotefs.filesystems.map((f) => ({ mountPoint: f.mountPoint, unlock: f.unlock, mounter: f.mounter })) },
    `ready: ${remotefs.filesystems.length} filesystem(s) mounted`)
  // FUSE keeps the event loop alive; nothing else to do until a signal arrives.
}
