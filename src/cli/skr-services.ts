import type { Logger } from '../log/logger.js'
import type { AttestationContext } from '../attestation/context.js'
import type { IdentityConfig } from '../identity/credential.js'
import type { MaaUserAgent } from '../maa/user-agent.js'
import { ServiceStatus } from '../api/status.js'
import { buildApi, listenApi } from '../api/server.js'
import { KeyProviderService } from '../keyprovider-grpc/service.js'
import { listenKeyProvider } from '../keyprovider-grpc/server.js'
import { learnMaaUserAgent } from '../skr/learn-maa-user-agent.js'
import type { VaultHost } from '../skr/vault-hosts.js'
import { EncfsError } from '../errors/encfs-error.js'

export interface SkrServiceOptions {
  attestation: AttestationContext
  identity?: IdentityConfig
  maaUserAgent: MaaUserAgent
  /** The operator's vault hosts (EncfsVaultHosts): where key release and UnWrapKey may send tokens, besides the cloud vaults. */
  vaultHosts?: readonly VaultHost[]
  /** The HTTP API on this port; `flag` names the option in messages. */
  http?: { port: number; flag: string; status?: ServiceStatus }
  /** The keyprovider gRPC service on this port. */
  grpc?: { port: number; flag: string }
  /** The attestation agent name the keyprovider answers to (skr, or aasp). */
  agentName?: string
  unsafeListen?: string
  logger: Logger
}

export interface RunningSkr {
  grpcAddresses?: string[]
  close(): Promise<void>
}

/**
 * What Go's skr (HTTP or gRPC) and AASP (both) serve, in one process: the keyprovider and the
 * HTTP API sharing one attestation context and one MAA User-Agent, which is learnt from the
 * identity in the background as Go skr does at start-up. A port that cannot be bound stops it.
 */
export async function startSkrServices(o: SkrServiceOptions): Promise<RunningSkr> {
  const { logger } = o
  const closers: (() => Promise<void>)[] = []
  const learning = new AbortController()
  learnMaaUserAgent(o.maaUserAgent, o.identity, logger, learning.signal)
  const close = async () => {
    learning.abort()
    for (const c of [...closers].reverse()) await c().catch((err: unknown) => logger.warn({ err }, 'stopping a server failed'))
  }
  let grpcAddresses: string[] | undefined
  try {
    if (o.grpc) {
      const grpc = o.grpc
      const service = new KeyProviderService({
        attestation: o.attestation,
        identity: o.identity,
        maaUserAgent: o.maaUserAgent,
        agentName: o.agentName,
        vaultHosts: o.vaultHosts,
        logger,
      })
      const server = await listenKeyProvider(service, { port: grpc.port, unsafeListen: o.unsafeListen, logger }).catch((err: Error) => {
        throw new EncfsError('GRPC_LISTEN_FAILED', `${err.message}; pick another port with ${grpc.flag}`, { cause: err })
      })
      closers.push(server.close)
      grpcAddresses = server.addresses
      logger.info(`Listening on port ${server.port}`)
    }
    if (o.http) {
      const http = o.http
      logger.info('Starting HTTP server...')
      const api = buildApi({
        status: http.status ?? new ServiceStatus(),
        attestation: o.attestation,
        identity: o.identity,
        maaUserAgent: o.maaUserAgent,
        vaultHosts: o.vaultHosts,
        logger,
      })
      closers.push(() => api.close())
      await listenApi(api, { port: http.port, unsafeListen: o.unsafeListen, logger }).catch((err: NodeJS.ErrnoException) => {
        throw new EncfsError(
          'API_LISTEN_FAILED',
          `cannot serve the API on port ${http.port}: ${err.code === 'EADDRINUSE' ? 'the port is in use' : err.message}; pick another with ${http.flag}`,
          { cause: err },
        )
      })
    }
  } catch (err) {
    await close()
    throw err
  }
  return { ...(grpcAddresses ? { grpcAddresses } : {}), close }
}
