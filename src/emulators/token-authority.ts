import { generateKeyPair, randomUUID, type KeyObject } from 'node:crypto'
import { SignJWT, jwtVerify, errors as joseErrors } from 'jose'

export interface AccessTokenClaims {
  aud: string
  /** The managed identity's client id (IMDS client_id), or the emulator's default identity. */
  appid: string
  oid: string
}

/**
 * Entra ID in miniature: the IMDS emulator asks it for access tokens, the Key Vault emulator
 * checks them (signature, audience, expiry), so a token for storage cannot release a key.
 */
export class TokenAuthority {
  readonly issuer = 'https://sts.emulator.encfs.local/'
  private constructor(
    private readonly privateKey: KeyObject,
    private readonly publicKey: KeyObject,
  ) {}

  static async create(): Promise<TokenAuthority> {
    const { privateKey, publicKey } = await new Promise<{ privateKey: KeyObject; publicKey: KeyObject }>((resolve, reject) =>
      generateKeyPair('rsa', { modulusLength: 2048 }, (err, pub, priv) => (err ? reject(err) : resolve({ privateKey: priv, publicKey: pub }))),
    )
    return new TokenAuthority(privateKey, publicKey)
  }

  async issue(resource: string, clientId: string, lifetimeSeconds = 3600): Promise<{ token: string; expiresOn: number }> {
    const now = Math.floor(Date.now() / 1000)
    const token = await new SignJWT({ appid: clientId, oid: clientId })
      .setProtectedHeader({ alg: 'RS256', typ: 'JWT' })
      .setIssuer(this.issuer)
      .setAudience(resource.replace(/\/$/, ''))
      .setIssuedAt(now)
      .setNotBefore(now)
      .setExpirationTime(now + lifetimeSeconds)
      .setJti(randomUUID())
      .sign(this.privateKey)
    return { token, expiresOn: now + lifetimeSeconds }
  }

  /** The claims of a valid token for `audience`; otherwise the reason, as Entra's errors word it. */
  async check(token: string, audience: string): Promise<{ ok: true; claims: AccessTokenClaims } | { ok: false; reason: string }> {
    try {
      const { payload } = await jwtVerify(token, this.publicKey, { issuer: this.issuer, audience: audience.replace(/\/$/, '') })
      return { ok: true, claims: payload as unknown as AccessTokenClaims }
    } catch (err) {
      if (err instanceof joseErrors.JWTExpired) return { ok: false, reason: 'the access token has expired' }
      if (err instanceof joseErrors.JWTClaimValidationFailed && err.claim === 'aud') return { ok: false, reason: `the access token is not for ${audience} (wrong resource)` }
      return { ok: false, reason: 'the access token is not valid' }
    }
  }
}
