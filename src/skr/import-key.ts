import { request } from '../http/request.js'
import { goJson } from '../encoding/go-json.js'
import { SkrError } from './errors.js'

export interface ReleasePolicyClaim {
  claim: string
  equals: string
}

/**
 * The policy Go's importkey writes: one anyOf entry per claim group, all with the MAA authority,
 * each claim re-serialised as Go's struct does ({"claim","equals"} only, Go's JSON escaping).
 */
export function releasePolicy(maaEndpoint: string, groups: ReleasePolicyClaim[][]): string {
  return goJson({ version: '1.0.0', anyOf: groups.map((allOf) => ({ authority: `https://${maaEndpoint}`, allOf: allOf.map((c) => ({ claim: c.claim, equals: c.equals })) })) })
}

/** Key Vault's api-version query: the config's akv.api_version as Go uses it (the whole "api-version=…" fragment), or a bare version. */
export function vaultApiVersion(configured: string | undefined): string {
  const v = configured?.trim()
  if (!v) return 'api-version=7.4'
  return v.includes('=') ? v : `api-version=${v}`
}

/** PUT a key with a release policy into Key Vault / Managed HSM, as Go's importkey does (docs/key-release.md#key-import). */
export async function importKey(o: {
  akvEndpoint: string
  name: string
  key: Record<string, unknown>
  policy: string
  bearer: string
  ca?: string[]
  apiVersion?: string
}): Promise<{ kid: string }> {
  const body = goJson({
    key: o.key,
    hsm: true,
    attributes: { exportable: true },
    release_policy: { contentType: 'application/json; charset=utf-8', data: Buffer.from(o.policy).toString('base64url') },
  })
  const res = await request(`https://${o.akvEndpoint}/keys/${o.name}?${vaultApiVersion(o.apiVersion)}`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${o.bearer}` },
    body,
    what: 'key import',
    ca: o.ca,
    attempts: 3,
  })
  const text = res.body.toString('utf8')
  if (res.status !== 200) throw new SkrError('SKR_IMPORT_FAILED', `importing ${o.name} into ${o.akvEndpoint} failed with HTTP ${res.status}: ${text.slice(0, 300)}`)
  return { kid: (JSON.parse(text) as { key: { kid: string } }).key.kid }
}
