/** Azure's secure key release policy grammar (docs/key-release.md#release-policy), evaluated against MAA token claims. */
export interface Condition {
  claim?: string
  equals?: unknown
  notEquals?: unknown
  less?: unknown
  lessOrEquals?: unknown
  greater?: unknown
  greaterOrEquals?: unknown
  exists?: unknown
  allOf?: Condition[]
  anyOf?: Condition[]
}

export interface ReleasePolicy {
  version?: string
  anyOf?: ({ authority?: string } & Condition)[]
}

const norm = (v: unknown): string => (typeof v === 'string' ? v : JSON.stringify(v))
const num = (v: unknown): number => (typeof v === 'number' ? v : Number(v))

/** Looks a claim up by name, then by dotted path (x-ms-runtime.keys...). */
function claimValue(claims: Record<string, unknown>, name: string): unknown {
  if (name in claims) return claims[name]
  return name.split('.').reduce<unknown>((v, k) => (v && typeof v === 'object' ? (v as Record<string, unknown>)[k] : undefined), claims)
}

/** Returns the first unmet condition as text, or undefined when the condition holds. */
function unmet(c: Condition, claims: Record<string, unknown>): string | undefined {
  if (c.allOf) {
    for (const x of c.allOf) {
      const why = unmet(x, claims)
      if (why) return why
    }
    return undefined
  }
  if (c.anyOf) {
    const reasons = c.anyOf.map((x) => unmet(x, claims))
    return reasons.some((r) => r === undefined) ? undefined : `none of: ${reasons.join(' | ')}`
  }
  if (!c.claim) return 'a condition without a claim'
  const v = claimValue(claims, c.claim)
  // Policies carry strings ("false", "0") where MAA's claims are booleans and numbers: compare as text.
  if (c.exists !== undefined) return (v !== undefined) === (c.exists === true || c.exists === 'true') ? undefined : `${c.claim} exists is ${v !== undefined}`
  if (v === undefined) return `${c.claim} is missing`
  if (c.equals !== undefined) return norm(v) === norm(c.equals) ? undefined : `${c.claim} is ${norm(v)}, not ${norm(c.equals)}`
  if (c.notEquals !== undefined) return norm(v) !== norm(c.notEquals) ? undefined : `${c.claim} equals ${norm(c.notEquals)}`
  if (c.less !== undefined) return num(v) < num(c.less) ? undefined : `${c.claim} ${norm(v)} is not < ${norm(c.less)}`
  if (c.lessOrEquals !== undefined) return num(v) <= num(c.lessOrEquals) ? undefined : `${c.claim} ${norm(v)} is not <= ${norm(c.lessOrEquals)}`
  if (c.greater !== undefined) return num(v) > num(c.greater) ? undefined : `${c.claim} ${norm(v)} is not > ${norm(c.greater)}`
  if (c.greaterOrEquals !== undefined) return num(v) >= num(c.greaterOrEquals) ? undefined : `${c.claim} ${norm(v)} is not >= ${norm(c.greaterOrEquals)}`
  return `${c.claim}: no operator`
}

const authorityOf = (a: string) =>
  a
    .replace(/^https?:\/\//, '')
    .replace(/\/+$/, '')
    .toLowerCase()

/** Why the policy does not allow release to a token from `issuer` with `claims`, or undefined if it does. */
export function policyRefusal(policy: ReleasePolicy, issuer: string, claims: Record<string, unknown>): string | undefined {
  const entries = policy.anyOf ?? []
  if (entries.length === 0) return 'the release policy has no anyOf entries'
  const reasons: string[] = []
  for (const e of entries) {
    if (!e.authority || authorityOf(e.authority) !== authorityOf(issuer)) {
      reasons.push(`authority ${e.authority ?? '(none)'} is not the token issuer ${issuer}`)
      continue
    }
    const why = unmet({ allOf: e.allOf, anyOf: e.anyOf }, claims)
    if (!why) return undefined
    reasons.push(why)
  }
  return reasons.join('; ')
}
