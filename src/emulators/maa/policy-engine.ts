import type { ClaimProperty, Comparison, Condition, Literal, Policy, Reference, Rule } from './policy-language.js'

/** A claim as the policy language sees it: MAA's own are issued by AttestationService, the policy's by AttestationPolicy. */
export interface PolicyClaim {
  type: string
  value: Literal
  issuer: 'AttestationService' | 'AttestationPolicy'
}

export interface PolicyDecision {
  permitted: boolean
  /** Why attestation is refused: the deny rule that matched, or that no rule permits. */
  reason?: string
  /** Claims the issuance rules put in the token (issue), by type. */
  issued: Record<string, Literal>
}

/** MAA's claims about the evidence as incoming claims; structured ones (x-ms-runtime) are not comparable in the language and are left out. */
export function incomingClaims(claims: Record<string, unknown>): PolicyClaim[] {
  return Object.entries(claims).flatMap(([type, value]) =>
    typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean' ? [{ type, value, issuer: 'AttestationService' as const }] : [],
  )
}

const valueType = (v: Literal) => (typeof v === 'number' ? 'Integer' : typeof v === 'boolean' ? 'Boolean' : 'String')

function property(c: PolicyClaim, p: ClaimProperty): Literal {
  return p === 'valueType' ? valueType(c.value) : c[p]
}

/** Typed comparison: equality within a type, order between numbers only (the language's table of operators per value type). */
function holds(actual: Literal, op: Comparison, expected: Literal): boolean {
  if (op === '==' || op === '!=') return (typeof actual === typeof expected && actual === expected) === (op === '==')
  if (typeof actual !== 'number' || typeof expected !== 'number') return false
  return op === '<' ? actual < expected : op === '<=' ? actual <= expected : op === '>' ? actual > expected : actual >= expected
}

type Bindings = Map<string, PolicyClaim>

const resolve = (operand: Literal | Reference, bound: Bindings): Literal => (typeof operand === 'object' ? property(bound.get(operand.ref)!, operand.property) : operand)

/** The first claim satisfying every property condition (a condition holds when at least one claim does). */
function match(condition: Condition, claims: PolicyClaim[], bound: Bindings): PolicyClaim | undefined {
  return claims.find((c) => condition.properties.every((p) => holds(property(c, p.property), p.op, resolve(p.operand, bound))))
}

/** The bindings when every condition of the rule holds, in order; undefined when one does not. */
function conditionsHold(rule: Rule, claims: PolicyClaim[]): Bindings | undefined {
  const bound: Bindings = new Map()
  for (const condition of rule.conditions) {
    const claim = match(condition, claims, bound)
    if (!claim) return undefined
    if (condition.id) bound.set(condition.id, claim)
  }
  return bound
}

function newClaim(rule: Rule, bound: Bindings): { type: string; value: Literal } {
  const claim = rule.action.claim!
  if ('ref' in claim) {
    const c = bound.get(claim.ref)!
    return { type: c.type, value: c.value }
  }
  return { type: claim.type, value: resolve(claim.value, bound) }
}

/**
 * Evaluates a policy as the language describes it (docs/attestation-policy.md#emulator-language):
 * authorization rules in order, where add() feeds later rules, a matching deny() refuses and
 * otherwise a matching permit() is needed; then issuance rules in order, issue() adding to the token.
 */
export function evaluatePolicy(policy: Policy, incoming: PolicyClaim[]): PolicyDecision {
  const claims = [...incoming]
  let permitted = false
  let denied: Rule | undefined
  for (const rule of policy.authorization) {
    const bound = conditionsHold(rule, claims)
    if (!bound) continue
    if (rule.action.verb === 'permit') permitted = true
    else if (rule.action.verb === 'deny') denied ??= rule
    else claims.push({ ...newClaim(rule, bound), issuer: 'AttestationPolicy' })
  }
  if (denied) return { permitted: false, reason: `the attestation policy denies it (authorization rule on line ${denied.line})`, issued: {} }
  if (!permitted) return { permitted: false, reason: 'no authorization rule of the attestation policy permits it', issued: {} }
  const issued: Record<string, Literal> = {}
  for (const rule of policy.issuance) {
    const bound = conditionsHold(rule, claims)
    if (!bound) continue
    const claim = newClaim(rule, bound)
    claims.push({ ...claim, issuer: 'AttestationPolicy' })
    if (rule.action.verb === 'issue') issued[claim.type] = claim.value
  }
  return { permitted: true, issued }
}
