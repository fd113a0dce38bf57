// The attestation tools as an operator runs them: `encfs release --explain` and
// `encfs attestation policy|signers`, against the emulators (identity from the IMDS emulator).
import test from 'ava'
import { writeFile } from 'node:fs/promises'
import { readFileSync } from 'node:fs'
import path from 'node:path'
import { randomBytes, X509Certificate } from 'node:crypto'
import { E2eFixture, runEncfs } from '../helpers/e2e.js'
import type { SkrStack } from '../helpers/skr-stack.js'
import { startImdsEmulator, type ImdsEmulator } from '../../src/emulators/imds/server.js'
import { startMaaEmulator, type MaaEmulator } from '../../src/emulators/maa/server.js'
import { createSigningCertificate } from '../../src/emulators/pki.js'
import { signerThumbprint } from '../../src/maa/policy-admin.js'
import { DEFAULT_POLICY } from '../../src/emulators/maa/policy-store.js'
import { parsePemChain } from '../../src/attestation/cert-chain.js'
import { thimChainPem } from '../../src/attestation/thim.js'

const e2e = new E2eFixture(test)
let s: SkrStack
let imds: ImdsEmulator
let isolated: MaaEmulator
let dir: string
let env: Record<string, string>
const files: Record<string, string> = {}

test.before(async () => {
  s = await e2e.skrStack()
  imds = await startImdsEmulator(s.authority)
  e2e.defer(() => imds.stop())
  dir = await e2e.tempDir('encfs-attest-cli-')
  const [owner, next] = await Promise.all([createSigningCertificate('cli owner'), createSigningCertificate('cli next')])
  isolated = await startMaaEmulator({
    trustedArks: parsePemChain(thimChainPem(await s.snp.thimCerts())).slice(2),
    authority: s.authority,
    policyMode: 'Isolated',
    policySigners: [owner.certPem],
  })
  e2e.defer(() => isolated.stop())
  for (const [name, text] of Object.entries({
    'ca.pem': [...s.ca, isolated.caPem].join(''),
    'owner.key': owner.keyPem,
    'owner.pem': owner.certPem,
    'next.key': next.keyPem,
    'next.pem': next.certPem,
  })) {
    files[name] = path.join(dir, name)
    await writeFile(files[name], text)
  }
  files.policy = path.join(dir, 'policy.txt')
  await writeFile(files.policy, 'version=1.0;\nauthorizationrules\n{\n    [type=="x-ms-sevsnpvm-is-debuggable", value==false] => permit();\n};\nissuancerules\n{\n};\n')
  env = {
    NODE_EXTRA_CA_CERTS: files['ca.pem']!,
    AZURE_POD_IDENTITY_AUTHORITY_HOST: imds.url,
    EncfsVaultHosts: s.vaultHostsEnv,
    UVM_SECURITY_CONTEXT_DIR: await e2e.tempDir('encfs-ctx-'),
    UVM_SECURITY_POLICY: s.policyBase64,
    UVM_REFERENCE_INFO: s.uvm.referenceInfo ?? '',
  }
  await s.importKey('ours', randomBytes(32))
  await s.importKey('older-pod', randomBytes(32), [[{ claim: 'x-ms-sevsnpvm-hostdata', equals: '9a'.repeat(32) }]])
})

const release = (kid: string, ...extra: string[]) =>
  runEncfs(['release', '--maa', s.maa.endpoint, '--akv', s.akv.endpoint, '--kid', kid, '--attestation', 'simulated', '--simulated-state', `${s.dir}/snp`, ...extra], { env })

test.serial('encfs release --explain: the failing clause and both values, exit 1 with SKR_POLICY_UNSATISFIED; ALLOWED and exit 0 when it holds', async (t) => {
  const refused = await release('older-pod', '--explain')
  t.is(refused.code, 1, refused.stderr)
  t.regex(refused.stdout, new RegExp(`\\[FAIL\\] anyOf\\[0\\]\\.allOf\\[0\\]: x-ms-sevsnpvm-hostdata equals "${'9a'.repeat(32)}": the token has "${s.hostData.toString('hex')}"`))
  t.regex(refused.stdout, /-> HOST_DATA is the SHA-256 of the pod's security policy/)
  t.regex(refused.stderr, /the release policy of older-pod does not allow release to this attestation .*\[SKR_POLICY_UNSATISFIED\]\n$/)
  const allowed = await release('ours', '--explain')
  t.is(allowed.code, 0, allowed.stderr)
  t.regex(allowed.stdout, /verdict: ALLOWED/)
  t.is(allowed.stdout.includes('"k"'), false, '--explain never prints a key')
  const both = await release('ours', '--explain', '--check-image', '/nonexistent')
  t.is(both.code, 2)
  t.regex(both.stderr, /mutually exclusive.*\[CLI_USAGE\]/)
})

test.serial('encfs attestation policy set, get and reset on an AAD-mode instance, with a token from the identity', async (t) => {
  const common = ['--maa', s.maa.endpoint]
  const set = await runEncfs(['attestation', 'policy', 'set', ...common, '--policy-file', files.policy!], { env })
  t.is(set.code, 0, set.stderr)
  t.regex(set.stdout, /SevSnpVm attestation policy of 127\.0\.0\.1:\d+ updated; x-ms-policy-token-hash [A-Za-z0-9_-]{43} matches the JWS sent/)
  const got = await runEncfs(['attestation', 'policy', 'get', ...common], { env })
  t.is(got.code, 0, got.stderr)
  t.regex(got.stdout, /\[type=="x-ms-sevsnpvm-is-debuggable", value==false\] => permit\(\);/)
  const reset = await runEncfs(['attestation', 'policy', 'reset', ...common], { env })
  t.is(reset.code, 0, reset.stderr)
  t.is((await runEncfs(['attestation', 'policy', 'get', ...common], { env })).stdout, DEFAULT_POLICY)
})

test.serial('an Isolated-mode instance: an unsigned policy is refused, a signed one taken; signers listed, added and removed', async (t) => {
  const common = ['--maa', isolated.endpoint]
  const owner = ['--signing-key', files['owner.key']!, '--signing-cert', files['owner.pem']!]
  const unsigned = await runEncfs(['attestation', 'policy', 'set', ...common, '--policy-file', files.policy!], { env })
  t.is(unsigned.code, 1)
  t.regex(unsigned.stderr, /HTTP 401 .*signed by one of its policy-management certificates.*\[MAA_POLICY_REFUSED\]/)
  const signed = await runEncfs(['attestation', 'policy', 'set', ...common, '--policy-file', files.policy!, ...owner], { env })
  t.is(signed.code, 0, signed.stderr)
  t.regex(signed.stdout, /updated \(signed\)/)
  const got = await runEncfs(['attestation', 'policy', 'get', ...common], { env })
  t.regex(got.stderr, /signed by CN=cli owner/)
  const thumb = (name: string) => signerThumbprint(new X509Certificate(readFileSync(files[name]!, 'utf8')))
  const added = await runEncfs(['attestation', 'signers', 'add', ...common, '--cert', files['next.pem']!, ...owner], { env })
  t.is(added.code, 0, added.stderr)
  const listed = await runEncfs(['attestation', 'signers', 'list', ...common], { env })
  t.regex(listed.stdout, new RegExp(`^${thumb('owner.pem')}  CN=cli owner  valid until .*\\n${thumb('next.pem')}  CN=cli next`, 'm'))
  const removed = await runEncfs(
    ['attestation', 'signers', 'remove', ...common, '--cert', files['owner.pem']!, '--signing-key', files['next.key']!, '--signing-cert', files['next.pem']!],
    { env },
  )
  t.is(removed.code, 0, removed.stderr)
  t.regex(removed.stdout, /is no longer a policy-management certificate/)
  const stale = await runEncfs(['attestation', 'policy', 'reset', ...common, ...owner], { env })
  t.regex(stale.stderr, /not a policy-management certificate.*\[MAA_POLICY_REFUSED\]/)
  const halfSigner = await runEncfs(['attestation', 'policy', 'reset', ...common, '--signing-key', files['next.key']!], { env })
  t.is(halfSigner.code, 2)
  t.regex(halfSigner.stderr, /signing-cert.*\[CLI_USAGE\]/)
})

test.serial('bad input: an attestation type that is not a name, a certificate file that is not one, a policy file that is missing', async (t) => {
  const common = ['--maa', isolated.endpoint, '--signing-key', files['owner.key']!, '--signing-cert', files['owner.pem']!]
  const type = await runEncfs(['attestation', 'policy', 'get', ...common, '--type', 'SevSnpVm/../x'], { env })
  t.is(type.code, 2)
  t.regex(type.stderr, /--type "SevSnpVm\/\.\.\/x" is not an attestation type .*\[CLI_USAGE\]/)
  const cert = await runEncfs(['attestation', 'signers', 'add', ...common, '--cert', files.policy!], { env })
  t.is(cert.code, 1)
  t.regex(cert.stderr, /policy\.txt is not a PEM X\.509 certificate.*\[MAA_POLICY_FILE\]/)
  const missing = await runEncfs(['attestation', 'policy', 'set', ...common, '--policy-file', `${dir}/no-such-policy.txt`], { env })
  t.is(missing.code, 1)
  t.regex(missing.stderr, /cannot read the attestation policy .*no-such-policy\.txt: ENOENT.*\[MAA_POLICY_FILE\]/)
})
