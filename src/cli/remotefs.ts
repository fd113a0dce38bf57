import { DEFAULT_TCTI } from '../tpm/vtpm.js'
import yargs from 'yargs'
import { logOptions, type Logger } from '../log/logger.js'
import { configSecrets, loadConfig, redactConfig } from '../config/load.js'
import { skrConfigOf } from './skr-config.js'
import { vaultHostsFromEnv, type VaultHost } from '../skr/vault-hosts.js'
import { planFilesystems } from '../config/plan.js'
import { startRemotefs, type Remotefs } from '../mount/remotefs.js'
import { defaultRuntimeDir } from '../mount/runtime-dir.js'
import { releaseKeyProvider } from '../keys/release-provider.js'
import { AttestationContext } from '../attestation/context.js'
import { ServiceStatus } from '../api/status.js'
import { EncfsError } from '../errors/encfs-error.js'
import type { SkrConfig } from '../config/validate.js'
import type { EncfsConfig } from '../config/schema.js'
import { MaaUserAgent } from '../maa/user-agent.js'
import { redactUrl } from '../log/redact.js'
import type { RunningSkr } from './skr-services.js'
import { defaultSimulatedStateDir } from '../attestation/providers/simulated.js'
import { asProgram, exitWith } from './fail.js'
import { startProgram } from './command-logger.js'
import { learnMaaUserAgent } from '../skr/learn-maa-user-agent.js'
import { kdfBudgetOptions, kdfBudgetFrom } from './kdf-options.js'
import { ATTESTATION_MODES } from '../attestation/providers/provider.js'

/** skr's default port, where the API listens when it is asked for without a port. */
export const DEFAULT_API_PORT = 8080

export interface ApiRequest {
  serve: boolean
  port: number
  /** Why it is on or off, for the ready line. */
  why: string
}

/**
 * Whether remotefs serves the API, and where. Only when asked: -port / Port, --api or
 * EncfsApi=true (as the Go encfs image, which serves none, so nothing else in the pod loses its
 * port); --no-api or EncfsApi=false turns it off whatever else says.
 */
export function apiRequest(flags: { api?: boolean; port?: number }, env: NodeJS.ProcessEnv = process.env): ApiRequest {
  const envPort = env.Port?.trim() ? env.Port : undefined
  const given = flags.port ?? (envPort !== undefined ? Number(envPort) : undefined)
  if (given !== undefined && (!Number.isInteger(given) || given < 0 || given > 65535)) {
    throw new EncfsError('API_PORT_INVALID', `${flags.port !== undefined ? '-port' : 'env Port'} ${JSON.stringify(flags.port ?? envPort)} is not a port number (0 to 65535)`)
  }
  const port = given ?? DEFAULT_API_PORT
  const envApi = env.EncfsApi?.trim() ? envFlag(env.EncfsApi) : undefined
  if (flags.api === false) return { serve: false, port, why: '--no-api' }
  if (flags.api === true) return { serve: true, port, why: '--api' }
  if (envApi !== undefined) return { serve: envApi, port, why: `EncfsApi=${env.EncfsApi}` }
  if (given !== undefined) return { serve: true, port, why: flags.port !== undefined ? '-port' : 'env Port' }
  return { serve: false, port, why: 'not asked for: set -port/Port or EncfsApi=true' }
}
import { FUSE_BACKEND_MODES, type FuseBackendMode } from '../fuse/backend.js'
import { BLOB_HTTP_MODES, type BlobHttpMode } from '../storage/blob-http.js'

function envFlag(value: string | undefined): boolean {
  return value !== undefined && /^(1|true|yes|on)$/i.test(value.trim())
}

export function parseRemotefsArgs(argv: string[], env: NodeJS.ProcessEnv = process.env) {
  return asProgram(
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
        describe: `serve the attestation and key release API on this port on localhost (env Port); off unless asked for`,
      })
      .option('api', {
        type: 'boolean',
        describe: `serve the skr attestation and key release API (env EncfsApi=true; on port ${DEFAULT_API_PORT} unless -port says); off by default, as in the Go encfs image. --no-api turns it off`,
      })
      .option('unsafe-listen', { type: 'string', describe: 'serve the API on this address instead of loopback (exposes key release to whoever can reach it)' })
      .option('grpc-port', {
        type: 'number',
        default: Number(env.EncfsGrpcPort) || undefined,
        describe:
          "also serve the keyprovider gRPC service (skr -server_type grpc) on this port on localhost (and on --unsafe-listen's address if given); off by default (env EncfsGrpcPort)",
      })
      .option('tpm-tcti', {
        type: 'string',
        default: env.EncfsTpmTcti || DEFAULT_TCTI,
        describe: 'the TPM of --attestation vtpm (Azure confidential VMs), as a tpm2-tss TCTI (env EncfsTpmTcti)',
      })
      .option('simulated-state', {
        type: 'string',
        default: env.EncfsSimulatedState || defaultSimulatedStateDir(env),
        describe: 'state directory of the simulated SNP chip (--attestation simulated)',
      })
      .option('runtime-dir', { type: 'string', default: env.EncfsRuntimeDir || defaultRuntimeDir(), describe: 'where the FUSE files live; one remotefs per directory' }),
  ).parseSync()
}

type RemotefsArgs = ReturnType<typeof parseRemotefsArgs>

/** The command line, the logger and whether to serve the API; or exit naming what is wrong (2 for the command line, 1 for a log level, as Go). */
function startupArgs(argv: string[]): { args: RemotefsArgs; logger: Logger; api: ApiRequest } | undefined {
  const started = startProgram('remotefs', () => parseRemotefsArgs(argv))
  if (!started) return undefined
  try {
    return { ...started, api: apiRequest({ api: started.args.api, port: started.args.port }) }
  } catch (err) {
    exitWith('remotefs', err, 2)
  }
}

/** What runs, for the signal handler: each part is stopped in reverse order of start. */
interface Running {
  remotefs?: Remotefs
  status?: ServiceStatus
  services?: RunningSkr
  stopRequested?: string
}

/**
 * SkrSideCarArgs, the skr sidecar's configuration (certcache, identity, maaconfig), for the API
 * and gRPC served in this container; unused, and said so, when neither is.
 */
function skrConfig(serving: boolean, logger: Logger): SkrConfig | undefined {
  const text = process.env.SkrSideCarArgs
  if (!text?.trim()) return undefined
  if (!serving) {
    logger.warn(
      'SkrSideCarArgs is set, but it configures only the attestation and key release API and the keyprovider gRPC service, and neither is served: ask for the API with -port/Port or EncfsApi=true (or gRPC with --grpc-port), or remove SkrSideCarArgs',
    )
    return undefined
  }
  return skrConfigOf(text, 'SkrSideCarArgs', logger)
}

/** The API and the keyprovider, when asked for, configured by SkrSideCarArgs where it says more than EncfsSideCarArgs. */
async function serveSkr(
  run: Running,
  o: {
    args: RemotefsArgs
    api: ApiRequest
    attestation: AttestationContext
    config: EncfsConfig
    skr?: SkrConfig
    maaUserAgent: MaaUserAgent
    vaultHosts: VaultHost[]
    logger: Logger
  },
) {
  const { args, api, skr, logger } = o
  if (!api.serve && args['grpc-port'] === undefined) return
  // Loaded only when served (fastify and the key release stack: docs/data-path.md, "Start-up").
  const { startSkrServices } = await import('./skr-services.js')
  const attestation = skr?.certcache
    ? new AttestationContext({ attestation: args.attestation, simulatedStateDir: args['simulated-state'], tpmTcti: args['tpm-tcti'], certcache: skr.certcache, logger })
    : o.attestation
  run.services = await startSkrServices({
    attestation,
    identity: skr?.identity ?? o.config.azure_info?.identity,
    maaUserAgent: o.maaUserAgent,
    vaultHosts: o.vaultHosts,
    ...(api.serve ? { http: { port: api.port, flag: '-port (or turn the API off with --no-api)', status: run.status } } : {}),
    ...(args['grpc-port'] !== undefined ? { grpc: { port: args['grpc-port'], flag: '--grpc-port' } } : {}),
    unsafeListen: args['unsafe-listen'],
    logger,
  })
  if (run.services.grpcAddresses) run.status!.grpc = { serving: true, addresses: run.services.grpcAddresses }
}

/** The configuration (EncfsSideCarArgs or -base64) and a plan per filesystem; a warning when -base64 exposes secrets. */
function planned(args: RemotefsArgs, logger: Logger) {
  const { config, source, warnings } = loadConfig({ base64: args.base64, env: process.env })
  logger.debug({ source, config: redactConfig(config) }, 'configuration')
  for (const w of warnings) logger.warn({ path: w.path }, `${w.path}: ${w.message}`)
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
  logGoPlan(config, logger)
  logger.info({ filesystems: plans.length, source }, 'starting')
  return { config, plans }
}

/** The lines Go's remotefs logs about its configuration, which runbooks look for. */
function logGoPlan(config: EncfsConfig, logger: Logger): void {
  const filesystems = config.azure_filesystems
  logger.info(`${filesystems.length} filesystems to mount:`)
  for (const fs of filesystems) logger.info(`  ${fs.mount_point} -> ${redactUrl(fs.azure_url)} (read-write: ${fs.read_write})`)
  if (filesystems.length === 0) {
    // Go's remotefs mounts nothing and its encfs.sh sleeps on: the container stays up, and so does remotefs.
    logger.warn('azure_filesystems is empty: nothing to mount; remotefs stays up (serving the API if asked for) until SIGTERM, as the Go sidecar container does')
  }
}

function logReady(run: Running, args: RemotefsArgs, api: ApiRequest, logger: Logger): void {
  const remotefs = run.remotefs!
  const apiNote = api.serve ? `API on ${args['unsafe-listen'] ?? 'localhost'}:${api.port}` : `API off (${api.why})`
  logger.warn(
    {
      mounts: remotefs.filesystems.map((f) => ({ mountPoint: f.mountPoint, unlock: f.unlock, mounter: f.mounter })),
      api: api.serve ? 'listening' : 'off',
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
  if (!run.services) return
  let timer: NodeJS.Timeout | undefined
  const late = await Promise.race([
    run.services.close().then(
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

/** SIGTERM / SIGINT: stop the servers, unmount everything in reverse order, exit 0. */
function onSignals(run: Running, controller: AbortController, logger: Logger): void {
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
}

export async function main(argv: string[]): Promise<void> {
  const parsed = startupArgs(argv)
  if (!parsed) return
  const { args, logger, api } = parsed
  logger.info(`Starting ${process.argv[1] ?? 'remotefs'}...`)
  const run: Running = {}
  const controller = new AbortController()
  onSignals(run, controller, logger)
  try {
    const { config, plans } = planned(args, logger)
    // A bad EncfsVaultHosts stops start-up here, not at the first key release.
    const vaultHosts = vaultHostsFromEnv()
    const attestation = new AttestationContext({
      attestation: args.attestation,
      simulatedStateDir: args['simulated-state'],
      tpmTcti: args['tpm-tcti'],
      certcache: config.azure_info?.certcache,
      logger,
    })
    const skr = skrConfig(api.serve || args['grpc-port'] !== undefined, logger)
    // One MAA User-Agent for the process, as Go skr's: the API's, gRPC's and the filesystems' releases.
    const maaUserAgent = new MaaUserAgent(skr?.maaconfig?.user_agent)
    run.status = new ServiceStatus(plans.map((p) => ({ index: p.index, mountPoint: p.mountPoint })))
    const s = run.status
    await serveSkr(run, { args, api, attestation, config, skr, maaUserAgent, vaultHosts, logger })
    // Served, the API and gRPC learn it; else the filesystems' own releases still carry Go's default.
    if (!run.services && plans.some((p) => p.key.kind === 'release')) learnMaaUserAgent(maaUserAgent, config.azure_info?.identity, logger, controller.signal)
    run.remotefs = await startRemotefs({
      plans,
      onState: (index, state, detail) => s.update(index, state, detail),
      keys: releaseKeyProvider({ attestation, identity: config.azure_info?.identity, maaUserAgent, vaultHosts, logger }),
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
    await closeServices(run, logger)
    // A signal during start-up aborts whatever runs (a key derivation, a key release, a download)
    // and start-up undoes itself: that is a clean stop, not a failure.
    if (run.stopRequested) {
      logger.warn({ signal: run.stopRequested, reason: (err as Error).message }, 'stopped during start-up; everything started was undone')
      process.exit(0)
    }
    logger.error({ err }, 'start-up failed')
    logger.fatal(`Failed to mount filesystems: ${(err as Error).message}`)
    if (run.status) run.status.phase = 'failed'
    exitWith('remotefs', err)
  }
  if (run.stopRequested) {
    await run.remotefs.stop().catch((err: unknown) => exitWith('remotefs', err))
    process.exit(0)
  }
  run.status!.phase = 'ready'
  logReady(run, args, api, logger)
  // FUSE (and the API) keep the event loop alive; with no filesystem and no API this does, until a signal.
  setInterval(() => {}, 2 ** 31 - 1)
}
