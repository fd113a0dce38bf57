import type { IdentityConfig } from '../identity/credential.js'
import type { Logger } from '../log/logger.js'
import type { MaaUserAgent } from '../maa/user-agent.js'
import { vaultToken } from './vault-token.js'

/**
 * Go skr's start-up step, in the background: the process's MAA User-Agent from a Key Vault token
 * of the identity (MaaUserAgent.learn). Go asks for the token only to read who this deployment is.
 */
export function learnMaaUserAgent(ua: MaaUserAgent, identity: IdentityConfig | undefined, logger: Logger, signal: AbortSignal): void {
  void ua.learn(() => vaultToken({ endpoint: 'vault.azure.net', audience: 'https://vault.azure.net' }, identity, { logger, signal }), logger)
}
