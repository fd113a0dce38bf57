import { isDeepStrictEqual } from 'node:util'
import { compactVerify } from 'jose'
import { maaReportData } from '../attestation/report-data.js'
import { MaaError } from './errors.js'
import { instanceUrl, onInstanceHost, signingKeysFor, type KeyFetchOptions, type MaaSigningKeys } from './signing-keys.js'

export interface TokenHeader {
  alg?: unknown
  kid?: unknown
  jku?: unknown
  typ?: unknown
  [name: string]: unknown
}

export interface VerifiedToken {
  header: TokenHeader
  claims: Record<string, unknown>
  /** The instance URL that issued it (`iss`). */
  issuer: string
}

export interface TokenCheckOptions extends KeyFetchOptions {
  /** The MAA host[:port] the token was asked of: its issuer and its signing keys. */
  endpoint: string
  /** The instance's key cache (default: the process's one for `endpoint`). */
  keys?: MaaSigningKeys
  /** The runtime data sent with the evidence: when given, the token must carry it (x-ms-runtime) and its hash (REPORT_DATA). */
  runtimeData?: Buffer
  now?: Date
  /** How far apart the clocks of MAA and this pod may be (default 120 s). */
  clockSkewSeconds?: number
}

/** Default clock skew: a confidential VM's clock may drift, MAA's tokens live for hours. */
export const DEFAULT_CLOCK_SKEW_SECONDS = 120

function decodePart(part: string | undefined, what: string): Record<string, unknown> {
  try {
    const value = JSON.parse(Buffer.from(part ?? '', 'base64url').toString('utf8')) as unknown
    if (value && typeof value === 'object' && !Array.isArray(value)) return value as Record<string, unknown>
  } catch {
    /* reported below */
  }
  throw new MaaError('MAA_TOKEN_MALFORMED', `the MAA token's ${what} is not base64url of a JSON object`)
}

function readToken(token: string): { header: TokenHeader; claims: Record<string, unknown> } {
  const parts = token.split('.')
  if (parts.length !== 3) throw new MaaError('MAA_TOKEN_MALFORMED', `the MAA token is not a compact JWT (${parts.length} dot-separated parts, expected 3)`)
  return { header: decodePart(parts[0], 'header'), claims: decodePart(parts[1], 'claims') }
}

const sameIssuer = (a: string, b: string) => a.replace(/\/+$/, '').toLowerCase() === b.replace(/\/+$/, '').toLowerCase()

function checkTimes(claims: Record<string, unknown>, now: Date, skew: number): void {
  const t = Math.floor(now.getTime() / 1000)
  const at = (n: number) => new Date(n * 1000).toISOString()
  for (const name of ['exp', 'nbf', 'iat'] as const) {
    if (claims[name] !== undefined && typeof claims[name] !== 'number') throw new MaaError('MAA_TOKEN_MALFORMED', `the MAA token's ${name} is not a number`)
  }
  const { exp, nbf, iat } = claims as { exp?: number; nbf?: number; iat?: number }
  if (exp === undefined) throw new MaaError('MAA_TOKEN_MALFORMED', 'the MAA token has no exp (expiry)')
  if (t - skew >= exp) throw new MaaError('MAA_TOKEN_EXPIRED', `the MAA token expired at ${at(exp)} (now ${now.toISOString()}, ${skew} s of clock skew allowed)`)
  for (const [name, value] of [
    ['nbf', nbf],
    ['iat', iat],
  ] as const) {
    if (value !== undefined && value > t + skew)
      throw new MaaError(
        'MAA_TOKEN_NOT_YET_VALID',
        `the MAA token's ${name} is ${at(value)}, in the future (now ${now.toISOString()}, ${skew} s of clock skew allowed): check this machine's clock`,
      )
  }
}

/** The token must be about what was sent: the runtime data itself, and its hash in the report's REPORT_DATA. */
function checkBinding(claims: Record<string, unknown>, runtimeData: Buffer): void {
  let sent: unknown
  try {
    sent = JSON.parse(runtimeData.toString('utf8'))
  } catch {
    throw new MaaError('MAA_TOKEN_RUNTIME_DATA', 'the runtime data sent to MAA is not JSON, so no token can carry it as x-ms-runtime')
  }
  if (!isDeepStrictEqual(claims['x-ms-runtime'], sent)) {
    const got = claims['x-ms-runtime'] === undefined ? 'no x-ms-runtime claim' : `x-ms-runtime ${JSON.stringify(claims['x-ms-runtime']).slice(0, 120)}`
    throw new MaaError('MAA_TOKEN_RUNTIME_DATA', `the MAA token carries ${got}, not the runtime data that was sent: it was issued for another request`)
  }
  const expected = maaReportData(runtimeData).toString('hex')
  const reportData = claims['x-ms-sevsnpvm-reportdata']
  if (typeof reportData !== 'string' || reportData.toLowerCase() !== expected) {
    throw new MaaError(
      'MAA_TOKEN_REPORT_DATA',
      `the MAA token's x-ms-sevsnpvm-reportdata is ${typeof reportData === 'string' ? reportData : 'missing'}, not SHA-256 of the runtime data (${expected.slice(0, 64)}...): the attested report is not bound to this request`,
    )
  }
}

/**
 * Verifies an MAA token as a relying party must (docs/attestation.md#token-verification): RS256
 * only, signed by a key the instance publishes, issued by that instance, within its validity with
 * a small clock skew and, when `runtimeData` is given, bound to it. Each failure has its own code.
 */
export async function verifyMaaToken(token: string, o: TokenCheckOptions): Promise<VerifiedToken> {
  const { header, claims } = readToken(token)
  if (header.alg !== 'RS256') throw new MaaError('MAA_TOKEN_ALGORITHM', `the MAA token is signed with alg ${JSON.stringify(header.alg ?? null)}; only RS256 is accepted`)
  const jku = header.jku
  if (jku !== undefined && (typeof jku !== 'string' || !onInstanceHost(jku, o.endpoint)))
    throw new MaaError('MAA_TOKEN_JKU', `the MAA token points at signing keys on ${String(jku)}, not on the instance ${instanceUrl(o.endpoint)}; refusing to fetch keys from there`)
  if (typeof header.kid !== 'string' || header.kid === '') throw new MaaError('MAA_TOKEN_KEY_UNKNOWN', 'the MAA token has no kid: it names no signing key of the instance')
  const keys = o.keys ?? signingKeysFor(o.endpoint)
  const key = await keys.keyFor(header.kid, jku, o)
  if (!key)
    throw new MaaError('MAA_TOKEN_KEY_UNKNOWN', `the MAA token is signed with key ${header.kid}, which ${instanceUrl(o.endpoint)} does not publish (after fetching its keys again)`)
  try {
    await compactVerify(token, key, { algorithms: ['RS256'] })
  } catch (err) {
    throw new MaaError('MAA_TOKEN_SIGNATURE', `the MAA token's signature does not verify with ${instanceUrl(o.endpoint)}'s key ${header.kid}: ${(err as Error).message}`, {
      cause: err,
    })
  }
  const issuer = claims.iss
  if (typeof issuer !== 'string' || !sameIssuer(issuer, instanceUrl(o.endpoint)))
    throw new MaaError('MAA_TOKEN_ISSUER', `the MAA token was issued by ${JSON.stringify(issuer ?? null)}, not by ${instanceUrl(o.endpoint)}, the instance that was asked`)
  checkTimes(claims, o.now ?? new Date(), o.clockSkewSeconds ?? DEFAULT_CLOCK_SKEW_SECONDS)
  if (o.runtimeData) checkBinding(claims, o.runtimeData)
  return { header, claims, issuer }
}
