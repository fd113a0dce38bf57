import { asText, firstFailedClaim, type AuthorityResult, type ClaimResult, type ConditionResult, type PolicyEvaluation } from './release-policy.js'

const mark = (ok: boolean) => (ok ? '[ ok ]' : '[FAIL]')

/** Edit distance, for "did you mean": the claim names are few and short, a library would be more than this loop. */
function distance(a: string, b: string): number {
  let row = Array.from({ length: b.length + 1 }, (_, i) => i)
  for (let i = 1; i <= a.length; i++) {
    const next = [i]
    for (let j = 1; j <= b.length; j++) next.push(Math.min(row[j]! + 1, next[j - 1]! + 1, row[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1)))
    row = next
  }
  return row[b.length]!
}

/** The token's claim names closest to a missing one: a difference of case, or a typo or two. */
function closeNames(name: string, claims: Record<string, unknown>): string[] {
  const names = Object.entries(claims).flatMap(([k, v]) =>
    v && typeof v === 'object' && !Array.isArray(v) && k !== 'x-ms-runtime' ? [k, ...Object.keys(v).map((n) => `${k}.${n}`)] : [k],
  )
  const exact = names.filter((n) => n.toLowerCase() === name.toLowerCase())
  if (exact.length) return exact
  return names.filter((n) => distance(n.toLowerCase(), name.toLowerCase()) <= 3).slice(0, 3)
}

const SVN = /-svn$|guestsvn$/

/** What a failed condition usually means for this claim, and what to do about it. */
export function claimHint(r: ClaimResult, claims: Record<string, unknown>): string | undefined {
  if (!r.present && r.operator !== 'exists') {
    const close = closeNames(r.claim, claims)
    return close.length
      ? `the token has no claim ${r.claim}; did you mean ${close.join(' or ')}? Claim names are matched exactly`
      : `the token has no claim ${r.claim}: MAA does not issue it for this attestation (a misspelt name, or a claim only a custom attestation policy issues)`
  }
  if (r.problem) return r.problem
  if (r.claim === 'x-ms-sevsnpvm-hostdata')
    return (
      "HOST_DATA is the SHA-256 of the pod's security policy (encfs policy-digest): this pod runs another security policy than the one the key is bound to " +
      `(its image or security policy changed). Bind the key to this pod: re-import it with encfs import-key (claim x-ms-sevsnpvm-hostdata = ${asText(r.actual)}) or update the key's release policy`
    )
  if (SVN.test(r.claim) && (r.operator === 'greaterOrEquals' || r.operator === 'greater'))
    return `the platform's ${r.claim.replace(/^x-ms-sevsnpvm-/, '')} is ${asText(r.actual)}, below the policy's minimum: the host runs older firmware than the policy requires; move to an updated host or lower the minimum in the release policy`
  if (r.operator === 'equals' && asText(r.actual).toLowerCase() === asText(r.expected).toLowerCase()) return 'the values differ only in letter case'
  if (r.claim === 'x-ms-sevsnpvm-is-debuggable')
    return asText(r.actual) === 'true'
      ? "the pod's VM allows debugging (SNP guest policy bit 19): a key bound to a non-debuggable pod is not released to it"
      : "the pod's VM does not allow debugging, and this clause asks for one that does"
  if (r.claim === 'x-ms-compliance-status')
    return 'MAA did not find the utility VM endorsed: azure-compliant-uvm needs the UVM reference info (reference-info-base64 / UVM_REFERENCE_INFO) sent with the report'
  if (r.claim === 'x-ms-attestation-type') return 'the token is not from the attestation the policy expects (sevsnpvm for a confidential container)'
  return undefined
}

function describeClaim(r: ClaimResult): string {
  const want = `${r.claim} ${r.operator} ${JSON.stringify(r.expected)}`
  if (r.operator === 'exists') return `${want}: the token ${r.present ? `has it (${asText(r.actual)})` : 'does not have it'}`
  return `${want}: ${r.present ? `the token has ${JSON.stringify(r.actual)}` : 'the token does not have this claim'}`
}

function renderCondition(r: ConditionResult, depth: number, claims: Record<string, unknown>, out: string[]): void {
  const pad = '  '.repeat(depth)
  if (r.kind === 'invalid') {
    out.push(`${pad}${mark(false)} ${r.path}: not a valid condition: ${r.problem}`)
    return
  }
  if (r.kind === 'claim') {
    out.push(`${pad}${mark(r.ok)} ${r.path}: ${describeClaim(r)}`)
    const hint = r.ok ? undefined : claimHint(r, claims)
    if (hint) out.push(`${pad}       -> ${hint}`)
    return
  }
  out.push(`${pad}${mark(r.ok)} ${r.path}: ${r.kind === 'allOf' ? 'all' : 'any'} of:`)
  for (const c of r.children) renderCondition(c, depth + 1, claims, out)
}

function renderAuthority(a: AuthorityResult, issuer: string, claims: Record<string, unknown>, out: string[]): void {
  if (a.problem) {
    out.push(`  ${mark(false)} ${a.path}: ${a.problem}`)
    return
  }
  const condition = a.condition
  const kind = condition && condition.kind !== 'claim' && condition.kind !== 'invalid' ? condition.kind : undefined
  const whose = a.issuerMatches ? "the token's issuer" : `NOT the token's issuer ${issuer}`
  out.push(`  ${mark(a.ok)} ${a.path}: authority ${a.authority} (${whose})${kind ? `; ${kind === 'allOf' ? 'all' : 'any'} of:` : ''}`)
  if (!a.issuerMatches)
    out.push(
      `         -> the key trusts attestations from ${a.authority} only: point key.authority.endpoint (or --maa) at that instance, or add an anyOf entry for ${issuer} to the release policy`,
    )
  // The entry's own allOf / anyOf was named on its line: its conditions follow.
  for (const c of kind && condition && 'children' in condition ? condition.children : condition ? [condition] : []) renderCondition(c, 2, claims, out)
}

/** The evaluation as lines a person reads: every clause with its outcome, the values compared, and what a failure usually means. */
export function explainEvaluation(e: PolicyEvaluation, o: { kid: string; vault: string; claims: Record<string, unknown> }): string[] {
  const out = [`release policy of key ${o.kid} at ${o.vault}, evaluated against the MAA token from ${e.issuer}:`]
  if (e.problem) out.push(`  ${mark(false)} ${e.problem}`)
  for (const a of e.authorities) renderAuthority(a, e.issuer, o.claims, out)
  out.push(
    e.ok
      ? 'verdict: ALLOWED: the policy holds for this token. If the vault still refuses, the identity lacks the release permission (HTTP 403) or the vault token is wrong (HTTP 401)'
      : `verdict: REFUSED: ${e.authorities.length > 1 ? 'no anyOf entry holds' : 'the policy does not hold'}, so the vault will not release ${o.kid} to this attestation`,
  )
  return out
}

/** One line: why the policy refuses, naming the first failed condition (the Key Vault emulator's 403 message). */
export function refusalSummary(e: PolicyEvaluation): string | undefined {
  if (e.ok) return undefined
  if (e.problem) return e.problem
  const reasons = e.authorities.map((a) => {
    if (a.problem) return `${a.path}: ${a.problem}`
    if (!a.issuerMatches) return `${a.path}: authority ${a.authority} is not the token issuer ${e.issuer}`
    const f = firstFailedClaim(a.condition)
    if (!f) return `${a.path}: not satisfied`
    if (f.kind === 'invalid') return `${f.path}: ${f.problem}`
    if (!f.present && f.operator !== 'exists') return `${f.path}: ${f.claim} is missing`
    return `${f.path}: ${f.claim} is ${asText(f.actual)}, not ${f.operator === 'equals' ? '' : `${f.operator} `}${asText(f.expected)}`
  })
  return reasons.join('; ')
}
