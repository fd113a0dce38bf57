import yargs from 'yargs'
import { createLogger, logOptions, type Logger } from '../log/logger.js'
import { configSecrets, loadConfig, redactConfig } from '../config/load.js'
import { planFilesystems } from '../config/plan.js'
import { startRemotefs, type Remotefs } from '../mount/remotefs.js'
import { defaultRuntimeDir } from '../mount/runtime-dir.js'
import { releaseKeyProvider } from '../keys/release-provider.js'
import { AttestationContext } from '../attestation/context.js'
import type { IdentityConfig } from '../identity/credential.js'
import { ServiceStatus } from '../api/status.js'
import type { buildApi } from '../api/server.js'
import { EncfsError } from '../errors/encfs-error.js'
import { defaultSimulatedStateDir } from '../attestation/providers/simulated.js'
import { exitWith, usageFailure } from './fail.js'
import { kdfBudgetOptions, kdfBudgetFrom } from './kdf-options.js'
import { ATTESTATION_MODES } from '../attestation/providers/provider.js'
import type { KeyProviderServer } from '../keyprovider/server.js'
import { vaultHostsFromEnv, type VaultHost } from '../skr/vault-hosts.js'

/** skr's default port: a group that still runs the Go skr sidecar holds it. */
export const DEFAULT_API_PORT = 8080

/**
 * The API port and whether the user chose it (-port, or env Port). Only a chosen port that
 * cannot be bound stops remotefs; the default one being taken costs the API, not the mounts.
 */
export function apiPort(flag: number | undefined, env: NodeJS.ProcessEnv = process.env): { port: number; explicit: boolean } {
  const given = flag ?? (env.Port?.trim() ? Number(env.Port) : undefined)
  if (given === undefined) return { port: DEFAULT_API_PORT, explicit: false }
  if (!Number.isInteger(given) || given < 0 || given > 65535) {
    throw new EncfsError('API_PORT_INVALID', `${flag !== undefined ? '-port' : 'env Port'} ${JSON.stringify(flag ?? env.Port)} is not a port number (0 to 65535)`)
  }
  return { port: given, explicit: true }
}
import { FUSE_BACKEND_MODES, type FuseBackendMode } from '../fuse/backend.js'
import { BLOB_HTTP_MODES, type BlobHttpMode } from '../storage/blob-http.js'

function envFlag(value: string | undefined): boolean {
  return value !== undefined && /^(1|true|yes|on)$/i.test(value.trim())
}

export function parseRemotefsArgs(argv: string[], env: NodeJS.ProcessEnv = process.env) {
  return (
    kdfBudgetOptions(yargs(argv), env)
      .scriptName('remotefs')
      .usage(
        '$0 [-base64 <b64 of the JSON config>] [-loglevel L] [-logfile F] [options]\n\n' +
          'Mounts the encrypted filesystems described by EncfsSideCarArgs and keeps serving them until SIGTERM.',
      )
      // The Go sidecar takes single-dash long flags (-base64); treat them as long options.
      .parserConfiguration({ 'short-option-groups': false, 'camel-case-expansion': false })
      .option('base64', { type: 'string', describe: 'standard base64 of the JSON configuration (default: env EncfsSideCarArgs)' })
      .options(logOptions(env))
      .option('allow-raw-key', { type: 'boolean', default: envFlag(env.EncfsAllowRawKey), describe: 'honour raw_key (testing only; env EncfsAllowRawKey=true)' })
      .option('unlock', {
        type: 'string',
        choices: ['auto', 'kernel', 'userspace'] as const,
        default: env.EncfsUnlock || 'auto',
        describe: 'decrypt with dm-crypt (kernel) or in encfs (userspace)',
      })
      .option('mounter', {
        type: 'string',
        choices: ['auto', 'loop', 'fuse2fs'] as const,
        default: env.EncfsMounter || 'auto',
        describe: 'mount ext4 with a loop device or with fuse2fs',
      })
      .option('fuse', {
        type: 'string',
        choices: FUSE_BACKEND_MODES,
        default: env.EncfsFuse || 'auto',
        describe: "FUSE backend: libfuse3 (encfs's native data plane), libfuse2 (fuse-native), or auto (libfuse3 when its addon loads; env EncfsFuse)",
      })
      .option('http', {
        type: 'string',
        choices: BLOB_HTTP_MODES,
        default: env.EncfsHttp || 'auto',
        describe: "HTTP client of blob reads: native (libcurl on its own thread), node (the SDK's pipeline), or auto (native when its addon loads; env EncfsHttp)",
      })
      .option('attestation', {
        type: 'string',
        choices: ATTESTATION_MODES,
        default: env.EncfsAttestation || 'auto',
        describe: 'SEV-SNP report source for key release (env EncfsAttestation); simulated is for the local stack only',
      })
      .option('lease-wait', {
        type: 'number',
        default: Number(env.EncfsLeaseWait) || 75,
        describe: "read-write: seconds to wait for another writer's blob lease to be released or expire (env EncfsLeaseWait)",
      })
      .option('port', {
        type: 'number',
        describe: `port of the attestation and key release API on localhost (env Port; default ${DEFAULT_API_PORT}: if that one is taken, remotefs mounts anyway without the API)`,
      })
      .option('api', {
        type: 'boolean',
        default: env.EncfsApi === undefined ? true : envFlag(env.EncfsApi),
        describe: 'serve the skr attestation and key release API (--no-api to turn it off; env EncfsApi)',
      })
      .option('unsafe-listen', { type: 'string', describe: 'serve the API on this address instead of loopback (exposes key release to whoever can reach it)' })
      .option('grpc-port', {
        type: 'number',
        default: Number(env.EncfsGrpcPort) || undefined,
        describe:
          "also serve the keyprovider gRPC service (skr -server_type grpc) on this port on localhost (and on --unsafe-listen's address if given); off by default (env EncfsGrpcPort)",
      })
      .option('simulated-state', {
        type: 'string',
        default: env.EncfsSimulatedState || defaultSimulatedStateDir(env),
        describe: 'state directory of the simulated SNP chip (--attestation simulated)',
      })
      .option('runtime-dir', { type: 'string', default: env.EncfsRuntimeDir || defaultRuntimeDir(), describe: 'where the FUSE files live; one remotefs per directory' })
      .strictOptions()
      .help()
      .version(false)
      .exitProcess(false)
      .fail(usageFailure)
      .parseSync()
  )
}

type RemotefsArgs = ReturnType<typeof parseRemotefsArgs>

/** The command line, the logger and the API port, or exit 2 naming what is wrong with them. */
function startupArgs(argv: string[]): { args: RemotefsArgs; logger: Logger; port: ReturnType<typeof apiPort> } | undefined {
  let args: RemotefsArgs
  let logger: Logger
  try {
    args = parseRemotefsArgs(argv)
    if (args.help) return undefined
    logger = createLogger({ level: args.loglevel, file: args.logfile, format: args.logformat, name: 'remotefs' })
    return { args, logger, port: apiPort(args.port) }
  } catch (err) {
    exitWith('remotefs', err, 2)
  }
}

/** What runs, for the signal handler: each part is stopped in reverse order of start. */
interface Running {
  remotefs?: Remotefs
  status?: ServiceStatus
  api?: ReturnType<typeof buildApi>
  grpc?: KeyProviderServer
  /** Why the API is not served although it was asked for (the default port was taken). */
  apiUnavailable?: string
  stopRequested?: string
}

/**
 * The API on its port. A port the user chose that cannot be bound stops remotefs; the default
 * one being taken costs the API, not the mounts.
 */
async function serveApi(
  run: Running,
  o: { args: RemotefsArgs; port: ReturnType<typeof apiPort>; attestation: AttestationContext; identity?: IdentityConfig; vaultHosts: VaultHost[]; logger: Logger },
): Promise<void> {
  const { port, logger } = o
  // Loaded only when served (fastify and the key release stack: docs/data-path.md, "Start-up").
  const { buildApi, listenApi } = await import('../api/server.js')
  run.api = buildApi({ status: run.status!, attestation: o.attestation, identity: o.identity, vaultHosts: o.vaultHosts, logger })
  try {
    await listenApi(run.api, { port: port.port, unsafeListen: o.args['unsafe-listen'], logger })
  } catch (e) {
    const err = e as NodeJS.ErrnoException
    const reason = err.code === 'EADDRINUSE' ? `port ${port.port} is in use (another skr sidecar?)` : err.message
    if (port.explicit) {
      throw new EncfsError('API_LISTEN_FAILED', `cannot serve the API on port ${port.port}: ${reason}; pick another with -port, or turn the API off with --no-api`, { cause: err })
    }
    // The mounts are the job: without the API, applications still get their filesystems.
    await run.api.close().catch(() => {})
    run.api = undefined
    run.apiUnavailable = reason
    logger.error(
      { port: port.port, err: new EncfsError('API_LISTEN_FAILED', reason) },
      `the attestation and key release API is unavailable (${reason}): mounting anyway; /status and the skr endpoints cannot be reached. Set -port/Port to a free port, or --no-api`,
    )
  }
}

/** The configuration (EncfsSideCarArgs or -base64) and a plan per filesystem; a warning when -base64 exposes secrets. */
function planned(args: RemotefsArgs, logger: Logger) {
  const { config, source } = loadConfig({ base64: args.base64, env: process.env })
  logger.debug({ source, config: redactConfig(config) }, 'configuration')
  const secrets = source === '-base64' ? configSecrets(config) : []
  if (secrets.length > 0) {
    logger.warn(
      { secrets },
      `the configuration given with -base64 carries secrets (${secrets.join(', ')}), which any local user can read in /proc/${process.pid}/cmdline; pass it in the EncfsSideCarArgs environment variable instead`,
    )
  }
  const plans = planFilesystems(config, {
    allowRawKey: args['allow-raw-key'],
    unlock: args.unlock as 'auto' | 'kernel' | 'userspace',
    mounter: args.mounter as 'auto' | 'loop' | 'fuse2fs',
    logger,
  })
  logger.info({ filesystems: plans.length, source }, 'starting')
  return { config, plans }
}

function logReady(run: Running, args: RemotefsArgs, port: number, logger: Logger): void {
  const remotefs = run.remotefs!
  const apiNote = !args.api
    ? 'API off (--no-api)'
    : run.apiUnavailable
      ? `API UNAVAILABLE (${run.apiUnavailable}): /status cannot be reached`
      : `API on ${args['unsafe-listen'] ?? 'localhost'}:${port}`
  logger.warn(
    {
      mounts: remotefs.filesystems.map((f) => ({ mountPoint: f.mountPoint, unlock: f.unlock, mounter: f.mounter })),
      api: !args.api ? 'off' : run.apiUnavailable ? 'unavailable' : 'listening',
    },
    `ready: ${remotefs.filesystems.length} filesystem(s) mounted; ${apiNote}`,
  )
}

/** How long the API and gRPC servers get to finish the requests they are answering when remotefs stops. */
const SERVICES_CLOSE_MS = 2_000

/**
 * Closes the API and the gRPC service, waiting for their requests in flight at most
 * SERVICES_CLOSE_MS: a key release hanging on a vault must not hold the unmounts (and SIGTERM).
 */
async function closeServices(run: Running, logger: Logger): Promise<void> {
  const closing = Promise.all([run.api?.close(), run.grpc?.close()])
  let timer: NodeJS.Timeout | undefined
  const late = await Promise.race([
    closing.then(
      () => false,
      (err: unknown) => {
        logger.warn({ err }, 'closing the API or the gRPC service failed; unmounting anyway')
        return false
      },
    ),
    new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(true), SERVICES_CLOSE_MS)
    }),
  ])
  clearTimeout(timer)
  if (late) logger.warn(`the API and gRPC requests in flight did not end within ${SERVICES_CLOSE_MS / 1000} s; unmounting anyway (they end with the process)`)
}

export async function main(argv: string[]): Promise<void> {
  const parsed = startupArgs(argv)
  if (!parsed) return
  const { args, logger, port } = parsed
  const run: Running = {}
  const controller = new AbortController()
  const stop = async (signal: string) => {
    if (run.stopRequested) {
      logger.warn({ signal }, 'already stopping')
      return
    }
    run.stopRequested = signal
    controller.abort()
    if (!run.remotefs) return // start-up notices and undoes itself
    logger.warn({ signal }, 'stopping: unmounting all filesystems')
    if (run.status) run.status.phase = 'stopping'
    try {
      await closeServices(run, logger)
      await run.remotefs.stop()
      logger.warn('stopped cleanly')
      process.exit(0)
    } catch (err) {
      exitWith('remotefs', err)
    }
  }
  process.on('SIGTERM', () => void stop('SIGTERM'))
  process.on('SIGINT', () => void stop('SIGINT'))

  try {
    const { config, plans } = planned(args, logger)
    // A bad EncfsVaultHosts stops start-up here, not at the first key release.
    const vaultHosts = vaultHostsFromEnv()
    const attestation = new AttestationContext({ attestation: args.attestation, simulatedStateDir: args['simulated-state'], certcache: config.azure_info?.certcache, logger })
    const s = new ServiceStatus(plans.map((p) => ({ index: p.index, mountPoint: p.mountPoint })))
    run.status = s
    if (args.api) await serveApi(run, { args, port, attestation, identity: config.azure_info?.identity, vaultHosts, logger })
    if (args['grpc-port']) {
      // The gRPC stack is loaded only when asked for.
      const [{ KeyProviderService }, { listenKeyProvider }] = await Promise.all([import('../keyprovider/service.js'), import('../keyprovider/server.js')])
      run.grpc = await listenKeyProvider(new KeyProviderService({ attestation, identity: config.azure_info?.identity, vaultHosts, logger }), {
        port: args['grpc-port'],
        unsafeListen: args['unsafe-listen'],
        logger,
      }).catch((err: Error) => {
        throw new EncfsError('GRPC_LISTEN_FAILED', `${err.message}; pick another with --grpc-port`, { cause: err })
      })
      s.grpc = { serving: true, addresses: run.grpc.addresses }
    }
    run.remotefs = await startRemotefs({
      plans,
      onState: (index, state, detail) => s.update(index, state, detail),
      keys: releaseKeyProvider({ attestation, identity: config.azure_info?.identity, vaultHosts, logger }),
      runtimeDir: args['runtime-dir'],
      leaseWaitMs: args['lease-wait'] * 1000,
      kdfBudget: kdfBudgetFrom(args),
      fuse: args.fuse as FuseBackendMode,
      http: args.http as BlobHttpMode,
      identity: config.azure_info?.identity,
      logger,
      signal: controller.signal,
    })
  } catch (err) {
    await run.api?.close().catch(() => {})
    await run.grpc?.close().catch(() => {})
    // A signal during start-up aborts whatever runs (a key derivation, a key release, a download)
    // and start-up undoes itself: that is a clean stop, not a failure.
    if (run.stopRequested) {
      logger.warn({ signal: run.stopRequested, reason: (err as Error).message }, 'stopped during start-up; everything started was undone')
      process.exit(0)
    }
    logger.error({ err }, 'start-up failed')
    if (run.status) run.status.phase = 'failed'
    exitWith('remotefs', err)
  }
  if (run.stopRequested) {
    await run.remotefs.stop().catch((err: unknown) => exitWith('remotefs', err))
    process.exit(0)
  }
  run.status!.phase = 'ready'
  logReady(run, args, port.port, logger)
  // FUSE keeps the event loop alive; nothing else to do until a signal arrives.
}
