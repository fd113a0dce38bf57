// The release-policy evaluator against Key Vault's documented grammar (anyOf of authorities, each
// with allOf / anyOf of conditions, nested groups, claim conditions with equals, notEquals, less,
// lessOrEquals, greater, greaterOrEquals and exists), and the account --explain gives of it.
import test from 'ava'
import { evaluateReleasePolicy, releasePolicyProblems, type PolicyEvaluation } from '../../src/skr/release-policy.js'
import { explainEvaluation, refusalSummary } from '../../src/skr/release-explain.js'

const MAA = 'https://sharedeus.eus.attest.azure.net'
const hostdata = 'c3'.repeat(32)
const token = {
  issuer: MAA,
  claims: {
    iss: MAA,
    'x-ms-attestation-type': 'sevsnpvm',
    'x-ms-compliance-status': 'azure-compliant-uvm',
    'x-ms-sevsnpvm-hostdata': hostdata,
    'x-ms-sevsnpvm-is-debuggable': false,
    'x-ms-sevsnpvm-vmpl': 0,
    'x-ms-sevsnpvm-snpfw-svn': 8,
    'x-ms-sevsnpvm-microcode-svn': 115,
    'x-ms-runtime': { keys: [{ kid: 'wrapping', kty: 'RSA' }] },
    'x-ms-isolation-tee': { 'x-ms-attestation-type': 'sevsnpvm' },
  },
}

const policy = (...entries: unknown[]) => ({ version: '1.0.0', anyOf: entries })
const allOf = (...conditions: unknown[]) => ({ authority: MAA, allOf: conditions })
const verdict = (p: unknown): boolean => evaluateReleasePolicy(p, token).ok
const explain = (e: PolicyEvaluation) => explainEvaluation(e, { kid: 'fs-key', vault: 'myvault.vault.azure.net', claims: token.claims }).join('\n')

test('every operator of the grammar, against typed claims and the text values policies carry', (t) => {
  const cases: [Record<string, unknown>, boolean][] = [
    [{ claim: 'x-ms-sevsnpvm-hostdata', equals: hostdata }, true],
    [{ claim: 'x-ms-sevsnpvm-hostdata', equals: 'ab'.repeat(32) }, false],
    [{ claim: 'x-ms-sevsnpvm-is-debuggable', equals: 'false' }, true],
    [{ claim: 'x-ms-sevsnpvm-is-debuggable', equals: false }, true],
    [{ claim: 'x-ms-sevsnpvm-vmpl', equals: '0' }, true],
    [{ claim: 'x-ms-sevsnpvm-vmpl', notEquals: 1 }, true],
    [{ claim: 'x-ms-sevsnpvm-vmpl', notEquals: '0' }, false],
    [{ claim: 'x-ms-sevsnpvm-snpfw-svn', less: 9 }, true],
    [{ claim: 'x-ms-sevsnpvm-snpfw-svn', less: 8 }, false],
    [{ claim: 'x-ms-sevsnpvm-snpfw-svn', lessOrEquals: '8' }, true],
    [{ claim: 'x-ms-sevsnpvm-snpfw-svn', greater: 7 }, true],
    [{ claim: 'x-ms-sevsnpvm-snpfw-svn', greater: 8 }, false],
    [{ claim: 'x-ms-sevsnpvm-snpfw-svn', greaterOrEquals: 8 }, true],
    [{ claim: 'x-ms-sevsnpvm-snpfw-svn', greaterOrEquals: 10 }, false],
    [{ claim: 'x-ms-sevsnpvm-hostdata', greaterOrEquals: 1 }, false],
    [{ claim: 'x-ms-sevsnpvm-guestsvn', exists: false }, true],
    [{ claim: 'x-ms-sevsnpvm-guestsvn', exists: true }, false],
    [{ claim: 'x-ms-sevsnpvm-vmpl', exists: 'true' }, true],
    [{ claim: 'x-ms-isolation-tee.x-ms-attestation-type', equals: 'sevsnpvm' }, true],
    [{ claim: 'x-ms-sevsnpvm-guestsvn', equals: '0' }, false],
  ]
  for (const [condition, expected] of cases) t.is(verdict(policy(allOf(condition))), expected, JSON.stringify(condition))
})

test('anyOf of authorities, allOf and anyOf nested; member names in any letter case (the grammar writes anyof and anyOf)', (t) => {
  const nested = allOf(
    { claim: 'x-ms-attestation-type', equals: 'sevsnpvm' },
    {
      anyof: [
        { claim: 'x-ms-sevsnpvm-vmpl', equals: '1' },
        {
          allOf: [
            { claim: 'x-ms-sevsnpvm-vmpl', equals: '0' },
            { claim: 'x-ms-sevsnpvm-is-debuggable', equals: 'false' },
          ],
        },
      ],
    },
  )
  t.true(verdict(policy(nested)))
  t.true(verdict({ Version: '1.0.0', AnyOf: [{ Authority: MAA, AllOf: [{ Claim: 'x-ms-sevsnpvm-vmpl', Equals: '0' }] }] }))
  t.false(verdict(policy({ authority: 'https://other.attest.azure.net', allOf: [{ claim: 'x-ms-sevsnpvm-vmpl', equals: '0' }] })))
  t.true(
    verdict(policy({ authority: 'https://other.attest.azure.net', allOf: [{ claim: 'x-ms-sevsnpvm-vmpl', equals: '0' }] }, allOf({ claim: 'x-ms-sevsnpvm-vmpl', equals: '0' }))),
  )
  t.true(verdict(policy({ authority: 'SHAREDEUS.eus.attest.azure.net/', anyOf: [{ claim: 'x-ms-sevsnpvm-vmpl', equals: '0' }] })), 'authority without scheme or case')
})

test('what the grammar does not allow never holds, and makes the policy invalid', (t) => {
  const bad = [
    [{}, 'the release policy has no anyOf'],
    [policy({ allOf: [{ claim: 'x', equals: '1' }] }), 'names no authority'],
    [policy(allOf({ claim: 'x-ms-sevsnpvm-vmpl', equals: '0', less: 1 })), 'exactly one of equals'],
    [policy(allOf({ claim: 'x-ms-sevsnpvm-vmpl', matches: '0' })), 'unknown: matches'],
    [policy(allOf({ allOf: [] })), 'allOf must be a non-empty array'],
    [policy({ authority: MAA, allOf: [{ claim: 'x-ms-sevsnpvm-vmpl', equals: '0' }], anyOf: [{ claim: 'x-ms-sevsnpvm-vmpl', equals: '0' }] }), 'exactly one of allOf and anyOf'],
    [policy(allOf('x-ms-sevsnpvm-vmpl')), 'must be a JSON object'],
  ] as const
  for (const [p, problem] of bad) {
    t.false(verdict(p), JSON.stringify(p))
    t.true(
      releasePolicyProblems(p).some((x) => x.includes(problem)),
      `${JSON.stringify(p)}: ${releasePolicyProblems(p).join('; ')}`,
    )
  }
  t.deepEqual(releasePolicyProblems(policy(allOf({ claim: 'x-ms-sevsnpvm-vmpl', equals: '0' }))), [])
})

test('--explain names the failing clause and the values for a hostdata mismatch', (t) => {
  const wanted = '9a'.repeat(32)
  const e = evaluateReleasePolicy(policy(allOf({ claim: 'x-ms-sevsnpvm-hostdata', equals: wanted }, { claim: 'x-ms-sevsnpvm-is-debuggable', equals: 'false' })), token)
  const text = explain(e)
  t.regex(text, new RegExp(`\\[FAIL\\] anyOf\\[0\\]\\.allOf\\[0\\]: x-ms-sevsnpvm-hostdata equals "${wanted}": the token has "${hostdata}"`))
  t.regex(text, /-> HOST_DATA is the SHA-256 of the pod's security policy .*re-import it with encfs import-key \(claim x-ms-sevsnpvm-hostdata = c3c3/)
  t.regex(text, /\[ ok \] anyOf\[0\]\.allOf\[1\]: x-ms-sevsnpvm-is-debuggable equals "false": the token has false/)
  t.regex(text, /verdict: REFUSED/)
  t.regex(refusalSummary(e)!, new RegExp(`anyOf\\[0\\]\\.allOf\\[0\\]: x-ms-sevsnpvm-hostdata is ${hostdata}, not ${wanted}`))
})

test('--explain names a missing claim and the claim the policy probably meant', (t) => {
  const text = explain(evaluateReleasePolicy(policy(allOf({ claim: 'x-ms-sevsnpvm-hostData', equals: hostdata })), token))
  t.regex(text, /\[FAIL\] anyOf\[0\]\.allOf\[0\]: x-ms-sevsnpvm-hostData equals "c3c3.*": the token does not have this claim/)
  t.regex(text, /did you mean x-ms-sevsnpvm-hostdata\? Claim names are matched exactly/)
  const unknown = explain(evaluateReleasePolicy(policy(allOf({ claim: 'x-ms-custom-tenant', equals: 'contoso' })), token))
  t.regex(unknown, /the token has no claim x-ms-custom-tenant: MAA does not issue it/)
})

test('--explain names an SVN below a greaterOrEquals threshold', (t) => {
  const e = evaluateReleasePolicy(policy(allOf({ claim: 'x-ms-sevsnpvm-snpfw-svn', greaterOrEquals: 10 }, { claim: 'x-ms-sevsnpvm-microcode-svn', greaterOrEquals: 100 })), token)
  const text = explain(e)
  t.regex(text, /\[FAIL\] anyOf\[0\]\.allOf\[0\]: x-ms-sevsnpvm-snpfw-svn greaterOrEquals 10: the token has 8/)
  t.regex(text, /-> the platform's snpfw-svn is 8, below the policy's minimum: the host runs older firmware/)
  t.regex(text, /\[ ok \] anyOf\[0\]\.allOf\[1\]: x-ms-sevsnpvm-microcode-svn greaterOrEquals 100: the token has 115/)
})

test('--explain shows every branch of an anyOf with no matching branch, and an authority that is not the issuer', (t) => {
  const e = evaluateReleasePolicy(
    policy(
      { authority: 'https://myattestation.weu.attest.azure.net', allOf: [{ claim: 'x-ms-sevsnpvm-hostdata', equals: hostdata }] },
      {
        authority: MAA,
        anyOf: [
          { claim: 'x-ms-sevsnpvm-vmpl', equals: '2' },
          { claim: 'x-ms-sevsnpvm-is-debuggable', equals: 'true' },
        ],
      },
    ),
    token,
  )
  t.false(e.ok)
  const text = explain(e)
  t.regex(text, /\[FAIL\] anyOf\[0\]: authority https:\/\/myattestation\.weu\.attest\.azure\.net \(NOT the token's issuer https:\/\/sharedeus\.eus\.attest\.azure\.net\); all of:/)
  t.regex(text, /-> the key trusts attestations from https:\/\/myattestation\.weu\.attest\.azure\.net only: point key\.authority\.endpoint/)
  t.regex(text, /\[FAIL\] anyOf\[1\]: authority https:\/\/sharedeus\.eus\.attest\.azure\.net \(the token's issuer\); any of:/)
  t.regex(text, /\[FAIL\] anyOf\[1\]\.anyOf\[0\]: x-ms-sevsnpvm-vmpl equals "2": the token has 0/)
  t.regex(text, /\[FAIL\] anyOf\[1\]\.anyOf\[1\]: x-ms-sevsnpvm-is-debuggable equals "true": the token has false\n\s+-> the pod's VM does not allow debugging/)
  t.regex(text, /verdict: REFUSED: no anyOf entry holds/)
  t.regex(refusalSummary(e)!, /anyOf\[0\]: authority .* is not the token issuer .*; anyOf\[1\]\.anyOf\[0\]: x-ms-sevsnpvm-vmpl is 0, not 2/)
})

test('a policy that holds is ALLOWED, with a word on what else refuses a release', (t) => {
  const e = evaluateReleasePolicy(policy(allOf({ claim: 'x-ms-sevsnpvm-hostdata', equals: hostdata })), token)
  t.true(e.ok)
  t.is(refusalSummary(e), undefined)
  t.regex(explain(e), /verdict: ALLOWED: .*release permission \(HTTP 403\)/)
})
