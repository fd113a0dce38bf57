import { createPublicKey, X509Certificate, type KeyObject } from 'node:crypto'
import { silentLogger, type Logger } from '../log/logger.js'
import { request } from '../http/request.js'
import { MaaError } from './errors.js'

/** The instance URL of an MAA endpoint (host[:port], no scheme, as the configuration names it): what its tokens carry as `iss`. */
export function instanceUrl(endpoint: string): string {
  return `https://${endpoint.replace(/^https:\/\//i, '').replace(/\/+$/, '')}`
}

/** True when `url` is an https URL on the instance's own host and port. */
export function onInstanceHost(url: string, endpoint: string): boolean {
  try {
    const u = new URL(url)
    const own = new URL(instanceUrl(endpoint))
    return u.protocol === 'https:' && u.host.toLowerCase() === own.host.toLowerCase()
  } catch {
    return false
  }
}

export interface KeyFetchOptions {
  /** Extra CAs (PEM) for the instance's TLS certificate (the emulators'). */
  ca?: string[]
  signal?: AbortSignal
  logger?: Logger
  /** Attempts per request (429, 5xx and transport errors are retried; default 4, as for the attest call). */
  attempts?: number
}

interface KeySet {
  url: string
  keys: Map<string, KeyObject>
  fetchedAt: number
}

/** A JWK of the set as a verification key: MAA publishes its keys as certificates (x5c); the emulator as n and e. */
function publicKeyOf(jwk: Record<string, unknown>): KeyObject | undefined {
  try {
    const x5c = jwk.x5c
    if (Array.isArray(x5c) && typeof x5c[0] === 'string') return new X509Certificate(Buffer.from(x5c[0], 'base64')).publicKey
    if (jwk.kty === 'RSA' && typeof jwk.n === 'string' && typeof jwk.e === 'string') return createPublicKey({ key: { kty: 'RSA', n: jwk.n, e: jwk.e }, format: 'jwk' })
  } catch {
    return undefined
  }
  return undefined
}

/**
 * The signing keys of one MAA instance, found through its OpenID configuration (or the token's
 * `jku` when that is on the instance's own host), kept for `maxAgeMs` and fetched again once when a
 * token names a kid the set does not have (MAA rotates its keys).
 */
export class MaaSigningKeys {
  private readonly sets = new Map<string, KeySet>()
  private readonly inFlight = new Map<string, Promise<KeySet>>()
  private discovered?: { url: string; at: number }

  constructor(
    readonly endpoint: string,
    private readonly o: { maxAgeMs?: number; now?: () => number } = {},
  ) {}

  private now(): number {
    return this.o.now?.() ?? Date.now()
  }

  private fresh(at: number): boolean {
    return this.now() - at < (this.o.maxAgeMs ?? 60 * 60 * 1000)
  }

  private async getJson(url: string, what: string, o: KeyFetchOptions): Promise<Record<string, unknown>> {
    const res = await request(url, { what, ca: o.ca, signal: o.signal, logger: o.logger, attempts: o.attempts ?? 4, headers: { accept: 'application/json' } })
    if (res.status !== 200) throw new MaaError('MAA_SIGNING_KEYS', `${what}: ${url} answered HTTP ${res.status}: ${res.body.toString('utf8').slice(0, 200)}`)
    try {
      const value = JSON.parse(res.body.toString('utf8')) as unknown
      if (value && typeof value === 'object' && !Array.isArray(value)) return value as Record<string, unknown>
    } catch {
      /* reported below */
    }
    throw new MaaError('MAA_SIGNING_KEYS', `${what}: ${url} did not answer a JSON object`)
  }

  /** The jwks_uri of the instance's OpenID configuration; it must be on the instance's own host. */
  private async jwksUri(o: KeyFetchOptions): Promise<string> {
    if (this.discovered && this.fresh(this.discovered.at)) return this.discovered.url
    const config = `${instanceUrl(this.endpoint)}/.well-known/openid-configuration`
    const uri = (await this.getJson(config, 'MAA OpenID configuration', o)).jwks_uri
    if (typeof uri !== 'string') throw new MaaError('MAA_SIGNING_KEYS', `${config} has no jwks_uri`)
    if (!onInstanceHost(uri, this.endpoint)) throw new MaaError('MAA_SIGNING_KEYS', `${config} names signing keys on another host (${uri}); refusing them`)
    this.discovered = { url: uri, at: this.now() }
    return uri
  }

  private fetchSet(url: string, o: KeyFetchOptions): Promise<KeySet> {
    const running = this.inFlight.get(url)
    if (running !== undefined) return running
    const fetching = (async () => {
      const body = await this.getJson(url, 'MAA signing keys', o)
      if (!Array.isArray(body.keys)) throw new MaaError('MAA_SIGNING_KEYS', `${url} is not a JWK set (no keys array)`)
      const keys = new Map<string, KeyObject>()
      for (const jwk of body.keys as Record<string, unknown>[]) {
        const key = jwk && typeof jwk.kid === 'string' ? publicKeyOf(jwk) : undefined
        if (key) keys.set(jwk.kid as string, key)
      }
      const set = { url, keys, fetchedAt: this.now() }
      this.sets.set(url, set)
      ;(o.logger ?? silentLogger).info({ url, kids: [...keys.keys()] }, 'MAA signing keys fetched')
      return set
    })().finally(() => this.inFlight.delete(url))
    this.inFlight.set(url, fetching)
    return fetching
  }

  /**
   * The key that verifies a token with this `kid` (and `jku`, already checked to be on the
   * instance's host), or undefined when the instance does not publish it even after a fresh fetch.
   */
  async keyFor(kid: string, jku: string | undefined, o: KeyFetchOptions = {}): Promise<KeyObject | undefined> {
    const url = jku && onInstanceHost(jku, this.endpoint) ? jku : await this.jwksUri(o)
    const cached = this.sets.get(url)
    if (cached && this.fresh(cached.fetchedAt) && cached.keys.has(kid)) return cached.keys.get(kid)
    return (await this.fetchSet(url, o)).keys.get(kid)
  }
}

const shared = new Map<string, MaaSigningKeys>()
const SHARED_MAX = 32

/** The process's key cache for an MAA endpoint (bounded: the least recently added endpoint goes first). */
export function signingKeysFor(endpoint: string): MaaSigningKeys {
  const key = endpoint.toLowerCase()
  let keys = shared.get(key)
  if (!keys) {
    keys = new MaaSigningKeys(endpoint)
    shared.set(key, keys)
    if (shared.size > SHARED_MAX) shared.delete(shared.keys().next().value!)
  }
  return keys
}
