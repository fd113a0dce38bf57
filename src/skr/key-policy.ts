import type { Logger } from '../log/logger.js'
import { request } from '../http/request.js'
import { serviceErrorDetail } from '../http/error-detail.js'
import { SkrError } from './errors.js'

export interface KeyReleasePolicy {
  /** The key's full id (`https://{vault}/keys/{name}/{version}`), as the vault names it. */
  kid: string
  /** The policy as JSON. */
  policy: unknown
}

/** release_policy.data: base64url (Key Vault's form) or standard base64 of the JSON policy. */
export function decodeReleasePolicy(data: string): unknown {
  try {
    return JSON.parse(Buffer.from(data, /[+/]/.test(data) ? 'base64' : 'base64url').toString('utf8')) as unknown
  } catch (err) {
    throw new SkrError('SKR_POLICY_INVALID', `the key's release_policy.data is not base64 of a JSON policy: ${(err as Error).message}`, { cause: err })
  }
}

function readFailure(status: number, o: { akvEndpoint: string; kid: string }, text: string): SkrError {
  const detail = serviceErrorDetail(text, 300)
  const hint =
    status === 404
      ? ` (no key ${o.kid} in ${o.akvEndpoint}: check key.kid, the key's name or name/version, and key.akv.endpoint)`
      : status === 403
        ? ' (the identity may release the key but not read it: reading the release policy needs the get permission on keys, e.g. the Key Vault Crypto User role)'
        : status === 401
          ? ' (the bearer token is missing, expired or for another resource)'
          : ''
  return new SkrError('SKR_KEY_READ_FAILED', `reading key ${o.kid} from ${o.akvEndpoint} failed with HTTP ${status} ${detail}${hint}`, { upstreamStatus: status })
}

/** GET /keys/{kid}: Key Vault answers the key's public part with its release policy (docs/key-release.md#explain). */
export async function fetchKeyReleasePolicy(o: {
  akvEndpoint: string
  kid: string
  bearer: string
  ca?: string[]
  logger?: Logger
  signal?: AbortSignal
}): Promise<KeyReleasePolicy> {
  const res = await request(`https://${o.akvEndpoint}/keys/${o.kid}?api-version=7.4`, {
    headers: { authorization: `Bearer ${o.bearer}`, accept: 'application/json' },
    what: 'reading the key and its release policy',
    attempts: 3,
    ca: o.ca,
    logger: o.logger,
    signal: o.signal,
  })
  const text = res.body.toString('utf8')
  if (res.status !== 200) throw readFailure(res.status, o, text)
  let bundle: { key?: { kid?: unknown }; release_policy?: { data?: unknown } }
  try {
    bundle = JSON.parse(text) as typeof bundle
  } catch {
    throw new SkrError('SKR_KEY_READ_FAILED', `the vault answered the read of ${o.kid} with something that is not JSON`)
  }
  const data = bundle.release_policy?.data
  if (typeof data !== 'string' || data === '')
    throw new SkrError('SKR_KEY_READ_FAILED', `key ${o.kid} in ${o.akvEndpoint} has no release policy: it is not an exportable key made for secure key release`)
  return { kid: typeof bundle.key?.kid === 'string' ? bundle.key.kid : o.kid, policy: decodeReleasePolicy(data) }
}
