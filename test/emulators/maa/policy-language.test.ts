// The MAA emulator's policy language: the forms of Microsoft's published sample policies parse,
// what the emulator does not evaluate is refused by name, and rules decide as the language says.
import test from 'ava'
import { parsePolicy, PolicySyntaxError } from '../../../src/emulators/maa/policy-language.js'
import { evaluatePolicy, incomingClaims } from '../../../src/emulators/maa/policy-engine.js'

// The shapes of the samples on learn.microsoft.com/azure/attestation (policy-examples,
// author-sign-policy, policy-version-1-0), with SevSnpVm claim names where they named SGX or TPM ones.
const SAMPLES: Record<string, string> = {
  'conditions joined with &&, typed values': `version= 1.0;
authorizationrules
{
       [ type=="x-ms-sevsnpvm-is-debuggable", value==false ]
        && [ type=="x-ms-sevsnpvm-guestsvn", value>= 0 ]
        && [ type=="x-ms-sevsnpvm-hostdata", value=="cadd74f71ebb8fbf9782baab649612520f3c416bc5ce9ac768808ddc8d9b031c"]
    => permit();
};
issuancerules {
c:[type=="x-ms-sevsnpvm-hostdata"] => issue(type="policy-digest", value=c.value);
};`,
  'an unconditional permit, issue(claim = c) and issueproperty': `version=1.0;
authorizationrules
{
=> permit();
};
issuancerules
{
c:[type == "x-ms-sevsnpvm-launchmeasurement", issuer == "AttestationService"] => issue(claim = c);
=> issueproperty(type = "omit_x5c", value = true);
};`,
  'single = inside conditions, no rule terminators, typographic quotes': `version=1.0;
authorizationrules
{
   c:[type=\u201csecureBootEnabled\u201d, issuer==\u201cAttestationService\u201d]=> permit()
};
issuancerules
{
  c:[type="secureBootEnabled", issuer=="AttestationService"]=> issue(claim=c)
  c:[type="notSafeMode", issuer=="AttestationService"]=> issue(claim=c)
};`,
  'version 1.1 with configurationrules and comments': `version= 1.1;
configurationrules{
\t=> issueproperty(type="x-ms-sgx-tcbidentifier", value="azuredefault");
};
// authorization: any report
authorizationrules{
\t=> permit();
};
/* issuance */
issuancerules{
\tc:[type=="x-ms-sevsnpvm-is-debuggable"] => issue(type="is-debuggable", value=c.value);
};`,
}

test('the forms of the published sample policies parse', (t) => {
  for (const [what, text] of Object.entries(SAMPLES)) {
    let rules = 0
    t.notThrows(() => {
      rules = parsePolicy(text).authorization.length
    }, what)
    t.true(rules > 0, what)
  }
  const p = parsePolicy(SAMPLES['conditions joined with &&, typed values']!)
  t.is(p.version, '1.0')
  t.deepEqual(p.authorization[0]!.conditions[1]!.properties[1], { property: 'value', op: '>=', operand: 0 })
  t.deepEqual(p.issuance[0]!.action, { verb: 'issue', claim: { type: 'policy-digest', value: { ref: 'c', property: 'value' } } })
})

test('what the emulator does not evaluate, or the language does not allow, is refused with the line and the reason', (t) => {
  const refused: [string, RegExp][] = [
    ['version=2.0;', /policy versions 1\.x/],
    ['version=1.0; authorizationrules { => permit(); }', /expected ";", found the end of the policy/],
    ['version=1.0;\nauthorizationrules {\n  => issue(type="x", value=1);\n};', /line 3: issue\(\) is not allowed in authorizationrules/],
    ['version=1.0;\nissuancerules {\n  => permit();\n};', /line 3: permit\(\) is not allowed in issuancerules/],
    [
      'version=1.2;\nissuancerules {\n c:[type == "events"] => add(type = "efiConfigVariables", value = JmesPath(c.value, "Events"));\n};',
      /expected a string, number, true, false or a reference like c.value, found "JmesPath"/,
    ],
    ['version=1.0;\nauthorizationrules {\n  [type=="x", value==d.value] => permit();\n};', /line 3: d is not the identifier of an earlier condition/],
    ['version=1.0;\nauthorizationrules {\n  [kind=="x"] => permit();\n};', /line 3: a claim has type, value, issuer and valueType, not kind/],
    ['version=1.0;\nauthorizationrules {\n  => allow();\n};', /action allow\(\) is not one the emulator evaluates/],
    ['version=1.0;\nsigningrules { };', /a section named signingrules/],
    ['version=1.0;\nauthorizationrules { [type=="x] => permit(); };', /a string that never ends/],
  ]
  for (const [text, message] of refused) {
    const err = t.throws(() => parsePolicy(text), { instanceOf: PolicySyntaxError }, text)
    t.regex(err!.message, message, text)
  }
})

const report = incomingClaims({
  'x-ms-attestation-type': 'sevsnpvm',
  'x-ms-sevsnpvm-is-debuggable': false,
  'x-ms-sevsnpvm-guestsvn': 2,
  'x-ms-sevsnpvm-hostdata': 'cadd74f71ebb8fbf9782baab649612520f3c416bc5ce9ac768808ddc8d9b031c',
  'x-ms-runtime': { keys: [] },
})

const decide = (text: string) => evaluatePolicy(parsePolicy(text), report)

test('authorization: a matching permit is needed, a matching deny wins, add() feeds later rules; values compare by type', (t) => {
  t.true(decide(SAMPLES['conditions joined with &&, typed values']!).permitted)
  t.deepEqual(decide(SAMPLES['conditions joined with &&, typed values']!).issued, { 'policy-digest': 'cadd74f71ebb8fbf9782baab649612520f3c416bc5ce9ac768808ddc8d9b031c' })
  const none = decide('version=1.0; authorizationrules { [type=="x-ms-sevsnpvm-guestsvn", value>=3] => permit(); };')
  t.false(none.permitted)
  t.regex(none.reason!, /no authorization rule of the attestation policy permits it/)
  const denied = decide('version=1.0;\nauthorizationrules {\n  => permit();\n  [type=="x-ms-sevsnpvm-is-debuggable", value==false] => deny();\n};')
  t.false(denied.permitted)
  t.regex(denied.reason!, /denies it \(authorization rule on line 4\)/)
  t.false(decide('version=1.0; authorizationrules { [type=="x-ms-sevsnpvm-is-debuggable", value=="false"] => permit(); };').permitted, 'the text "false" is not the boolean false')
  t.true(
    decide(
      'version=1.0; authorizationrules { c:[type=="x-ms-sevsnpvm-guestsvn"] => add(type="svn-copy", value=c.value); [type=="svn-copy", value==2, issuer=="AttestationPolicy"] => permit(); };',
    ).permitted,
  )
  t.true(
    decide('version=1.0; authorizationrules { [type=="x-ms-sevsnpvm-guestsvn", valueType=="Integer"] && [type=="x-ms-attestation-type", value!="sgx"] => permit(); };').permitted,
  )
})

test('issuance: issue() adds to the token, add() and issueproperty() do not; references take the matched claim', (t) => {
  const d = decide(`version=1.0;
authorizationrules { => permit(); };
issuancerules {
  c:[type=="x-ms-sevsnpvm-guestsvn"] => add(type="svn", value=c.value);
  s:[type=="svn", issuer=="AttestationPolicy"] => issue(type="guest-svn", value=s.value);
  c:[type=="x-ms-attestation-type"] => issue(claim=c);
  => issueproperty(type="omit_x5c", value=true);
  [type=="x-ms-sevsnpvm-guestsvn", value>100] => issue(type="never", value=1);
};`)
  t.deepEqual(d.issued, { 'guest-svn': 2, 'x-ms-attestation-type': 'sevsnpvm' })
})
