import type { AccessToken, TokenCredential } from '@azure/identity'

/** Blob storage's token audience. */
export const STORAGE_SCOPE = 'https://storage.azure.com/.default'

/** A token is renewed this long before it expires (core-rest-pipeline's bearer policy uses 2 minutes). */
const REFRESH_BEFORE_MS = 2 * 60_000

/**
 * Bearer tokens for the native fetcher, which has no SDK pipeline (and so no bearer-token policy)
 * around it: one token at a time, shared by every request, asked for again near its expiry or
 * when the credential says to refresh it; concurrent callers wait for the same request.
 */
export class BearerToken {
  private token?: AccessToken
  private asking?: Promise<AccessToken>

  constructor(
    private readonly credential: TokenCredential,
    private readonly scope = STORAGE_SCOPE,
  ) {}

  /** The Authorization header for a request to `url`; as the SDK's bearer policy, never over plain HTTP. */
  async headerFor(url: string): Promise<string> {
    if (!/^https:/i.test(url)) throw new Error('Bearer token authentication is not permitted for non-TLS protected (non-https) URLs.')
    return this.header()
  }

  async header(): Promise<string> {
    const now = Date.now()
    const t = this.token
    const fresh = t && now < t.expiresOnTimestamp - REFRESH_BEFORE_MS && (t.refreshAfterTimestamp === undefined || now < t.refreshAfterTimestamp)
    if (fresh) return `Authorization: Bearer ${t.token}`
    if (!this.asking) {
      // Not tied to one caller's signal: the request is shared.
      this.asking = this.credential
        .getToken(this.scope)
        .then((got) => {
          if (!got) throw new Error(`the credential returned no token for ${this.scope}`)
          this.token = got
          return got
        })
        .finally(() => {
          this.asking = undefined
        })
      // A background refresh that fails is seen by the next caller that needs it.
      this.asking.catch(() => {})
    }
    // A token still valid serves while a refresh is under way.
    if (t && now < t.expiresOnTimestamp) return `Authorization: Bearer ${t.token}`
    return `Authorization: Bearer ${(await this.asking).token}`
  }
}
