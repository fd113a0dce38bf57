/**
 * Key Vault's secure key release policy grammar (docs/key-release.md#release-policy), evaluated
 * against an MAA token's claims. One implementation for the Key Vault emulator's decision and for
 * `encfs release --explain`'s account of it: the result keeps every clause with its outcome and
 * the claim values it compared.
 */

export const OPERATORS = ['equals', 'notEquals', 'less', 'lessOrEquals', 'greater', 'greaterOrEquals', 'exists'] as const
export type Operator = (typeof OPERATORS)[number]

export interface ClaimResult {
  kind: 'claim'
  /** Where the condition is in the policy: `anyOf[0].allOf[2]`. */
  path: string
  ok: boolean
  claim: string
  operator: Operator
  expected: unknown
  /** The token's value, when it has the claim. */
  actual?: unknown
  present: boolean
  /** Why the comparison could not be made (a value that is not a number). */
  problem?: string
}

export interface GroupResult {
  kind: 'allOf' | 'anyOf'
  path: string
  ok: boolean
  children: ConditionResult[]
}

/** A condition the grammar does not allow: Key Vault would refuse the policy at import; here it never holds. */
export interface InvalidResult {
  kind: 'invalid'
  path: string
  ok: false
  problem: string
}

export type ConditionResult = ClaimResult | GroupResult | InvalidResult

export interface AuthorityResult {
  path: string
  authority?: string
  /** The authority names the MAA instance that issued the token. */
  issuerMatches: boolean
  ok: boolean
  condition?: ConditionResult
  problem?: string
}

export interface PolicyEvaluation {
  ok: boolean
  issuer: string
  authorities: AuthorityResult[]
  /** The policy as a whole is not of the grammar (no anyOf...). */
  problem?: string
}

export interface TokenClaims {
  /** The token's `iss`. */
  issuer: string
  claims: Record<string, unknown>
}

type Json = Record<string, unknown>

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v)

/** A member by name in any letter case: Key Vault's own grammar writes `anyof` inside conditions and `anyOf` at the top. */
function member(o: Json, name: string): { key: string; value: unknown } | undefined {
  const key = Object.keys(o).find((k) => k.toLowerCase() === name.toLowerCase())
  return key === undefined ? undefined : { key, value: o[key] }
}

/** A claim by its name, else by dotted path into nested claims (`x-ms-runtime.keys`, `x-ms-isolation-tee.x-ms-attestation-type`). */
export function claimValue(claims: Json, name: string): unknown {
  if (Object.hasOwn(claims, name)) return claims[name]
  return name.split('.').reduce<unknown>((v, k) => (isObject(v) && Object.hasOwn(v, k) ? v[k] : undefined), claims)
}

/** Claims are typed (false, 0) where policies usually carry text ("false", "0"): equality compares the text. */
export const asText = (v: unknown): string => (typeof v === 'string' ? v : JSON.stringify(v))

const asNumber = (v: unknown): number | undefined => {
  const n = typeof v === 'number' ? v : typeof v === 'string' && v.trim() !== '' ? Number(v) : Number.NaN
  return Number.isFinite(n) ? n : undefined
}

function compare(op: Operator, actual: unknown, expected: unknown): { ok: boolean; problem?: string } {
  if (op === 'equals') return { ok: asText(actual) === asText(expected) }
  if (op === 'notEquals') return { ok: asText(actual) !== asText(expected) }
  const a = asNumber(actual)
  const e = asNumber(expected)
  if (a === undefined || e === undefined)
    return { ok: false, problem: `${op} compares numbers, and ${a === undefined ? `the claim's ${asText(actual)}` : `the policy's ${asText(expected)}`} is not one` }
  const ok = op === 'less' ? a < e : op === 'lessOrEquals' ? a <= e : op === 'greater' ? a > e : a >= e
  return { ok }
}

function evaluateClaim(c: Json, claimName: unknown, path: string, claims: Json): ConditionResult {
  if (typeof claimName !== 'string' || claimName === '') return { kind: 'invalid', path, ok: false, problem: 'claim must be a non-empty string' }
  const ops = OPERATORS.flatMap((op) => {
    const m = member(c, op)
    return m ? [{ op, value: m.value }] : []
  })
  const extra = Object.keys(c).filter((k) => k.toLowerCase() !== 'claim' && !OPERATORS.some((op) => op.toLowerCase() === k.toLowerCase()))
  if (ops.length !== 1 || extra.length > 0)
    return { kind: 'invalid', path, ok: false, problem: `a claim condition needs exactly one of ${OPERATORS.join(', ')}${extra.length ? ` (unknown: ${extra.join(', ')})` : ''}` }
  const { op, value: expected } = ops[0]!
  const actual = claimValue(claims, claimName)
  const present = actual !== undefined
  if (op === 'exists') {
    const want = expected === true || expected === 'true'
    return { kind: 'claim', path, claim: claimName, operator: op, expected, actual, present, ok: present === want }
  }
  if (!present) return { kind: 'claim', path, claim: claimName, operator: op, expected, present, ok: false }
  return { kind: 'claim', path, claim: claimName, operator: op, expected, actual, present, ...compare(op, actual, expected) }
}

/** One condition: a claim comparison, or a nested allOf / anyOf. */
export function evaluateCondition(c: unknown, path: string, claims: Json): ConditionResult {
  if (!isObject(c)) return { kind: 'invalid', path, ok: false, problem: 'a condition must be a JSON object' }
  const claim = member(c, 'claim')
  if (claim) return evaluateClaim(c, claim.value, path, claims)
  const all = member(c, 'allOf')
  const any = member(c, 'anyOf')
  if ((all ? 1 : 0) + (any ? 1 : 0) !== 1) return { kind: 'invalid', path, ok: false, problem: 'a condition needs a claim, or exactly one of allOf and anyOf' }
  const kind = all ? 'allOf' : 'anyOf'
  const list = (all ?? any)!.value
  if (!Array.isArray(list) || list.length === 0) return { kind: 'invalid', path, ok: false, problem: `${kind} must be a non-empty array of conditions` }
  const children = list.map((x, i) => evaluateCondition(x, `${path ? `${path}.` : ''}${kind}[${i}]`, claims))
  return { kind, path, children, ok: kind === 'allOf' ? children.every((r) => r.ok) : children.some((r) => r.ok) }
}

/** Authorities are URLs of MAA instances; compared without scheme or trailing slash, ignoring case. */
export const sameAuthority = (a: string, b: string): boolean => {
  const norm = (x: string) =>
    x
      .replace(/^https?:\/\//i, '')
      .replace(/\/+$/, '')
      .toLowerCase()
  return norm(a) === norm(b)
}

function evaluateAuthority(entry: unknown, path: string, token: TokenClaims): AuthorityResult {
  if (!isObject(entry)) return { path, issuerMatches: false, ok: false, problem: 'an anyOf entry must be an object with an authority' }
  const authority = member(entry, 'authority')?.value
  if (typeof authority !== 'string') return { path, issuerMatches: false, ok: false, problem: 'the entry names no authority (the MAA instance whose tokens it accepts)' }
  const issuerMatches = sameAuthority(authority, token.issuer)
  const conditions = Object.fromEntries(Object.entries(entry).filter(([k]) => k.toLowerCase() !== 'authority'))
  const condition = evaluateCondition(conditions, path, token.claims)
  return { path, authority, issuerMatches, condition, ok: issuerMatches && condition.ok }
}

/** The policy's verdict on a token, with every clause's outcome (docs/key-release.md#release-policy). */
export function evaluateReleasePolicy(policy: unknown, token: TokenClaims): PolicyEvaluation {
  const base = { ok: false, issuer: token.issuer, authorities: [] as AuthorityResult[] }
  if (!isObject(policy)) return { ...base, problem: 'the release policy is not a JSON object' }
  const anyOf = member(policy, 'anyOf')?.value
  if (!Array.isArray(anyOf) || anyOf.length === 0) return { ...base, problem: 'the release policy has no anyOf list of authorities' }
  const authorities = anyOf.map((e, i) => evaluateAuthority(e, `anyOf[${i}]`, token))
  return { ...base, authorities, ok: authorities.some((a) => a.ok) }
}

/** The first unmet claim condition under `r`, depth first (the one a user fixes first). */
export function firstFailedClaim(r: ConditionResult | undefined): ClaimResult | InvalidResult | undefined {
  if (!r || r.ok) return undefined
  if (r.kind === 'claim' || r.kind === 'invalid') return r
  for (const c of r.children) {
    const f = firstFailedClaim(c)
    if (f) return f
  }
  return undefined
}

function invalidUnder(r: ConditionResult | undefined): string[] {
  if (!r) return []
  if (r.kind === 'invalid') return [`${r.path}: ${r.problem}`]
  return r.kind === 'claim' ? [] : r.children.flatMap(invalidUnder)
}

/** What makes a policy not of the grammar (Key Vault refuses such a policy at import); empty when it is. */
export function releasePolicyProblems(policy: unknown): string[] {
  const e = evaluateReleasePolicy(policy, { issuer: '', claims: {} })
  if (e.problem) return [e.problem]
  return e.authorities.flatMap((a) => (a.problem ? [`${a.path}: ${a.problem}`] : invalidUnder(a.condition)))
}
