import type { Logger } from '../log/logger.js'

/** Go skr's ConfidentialSkrContainerIdentifier: what it sends before (or without) the identity's. */
export const SKR_USER_AGENT = 'ConfidentialSkrContainer'

/**
 * The User-Agent of every MAA request one process makes (/attest/maa, key release for the API,
 * the keyprovider and the filesystems), as Go skr keeps one for all: `maaconfig.user_agent`
 * when configured, else `ConfidentialSkrContainer`, refined once a managed identity token names
 * the subscription (or the app). MAA logs it, which is how support finds a deployment's requests.
 */
export class MaaUserAgent {
  private current: string

  constructor(private readonly configured?: string) {
    this.current = configured || SKR_USER_AGENT
  }

  get value(): string {
    return this.current
  }

  /**
   * Go's default from a token's claims: `xms_az_rid` (a managed identity's resource id) gives
   * `subscription_id=`, else `appid` gives `client_id=`; undefined when neither is usable.
   */
  static fromToken(jwt: string): string | undefined {
    const parts = jwt.split('.')
    if (parts.length !== 3) return undefined
    let claims: Record<string, unknown>
    try {
      claims = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8')) as Record<string, unknown>
    } catch {
      return undefined
    }
    const rid = claims.xms_az_rid
    if (typeof rid === 'string' && rid !== '') {
      const segments = rid.split('/')
      return segments.length >= 3 && segments[1] === 'subscriptions' && segments[2] ? `${SKR_USER_AGENT} subscription_id=${segments[2]}` : undefined
    }
    return typeof claims.appid === 'string' && claims.appid !== '' ? `${SKR_USER_AGENT} client_id=${claims.appid}` : undefined
  }

  /**
   * As Go skr at start-up, in the background: unless a User-Agent is configured, take a vault
   * token from the identity and use what it says. A failure keeps `ConfidentialSkrContainer`
   * (Go then sends its HTTP library's default, which identifies nothing).
   */
  async learn(token: () => Promise<string>, logger: Logger): Promise<void> {
    if (this.configured) {
      logger.info({ userAgent: this.configured }, `Using provided string ${this.configured} as User-Agent for request to MAA`)
      return
    }
    logger.info('Default MAA User-Agent not provided in AzureInfo blob. Getting a managed identity token to construct a default value...')
    try {
      const learned = MaaUserAgent.fromToken(await token())
      if (!learned) {
        logger.warn({ userAgent: this.current }, 'the identity token names neither a subscription (xms_az_rid) nor an app (appid): MAA requests keep the default User-Agent')
        return
      }
      this.current = learned
      logger.info({ userAgent: learned }, `Successfully fetched token, setting default MAA User-Agent to: ${learned}`)
    } catch (err) {
      logger.warn({ err, userAgent: this.current }, `no managed identity token to name this deployment to MAA: MAA requests keep the User-Agent ${this.current}`)
    }
  }
}
