import { execFile } from 'node:child_process'
import { mkdir } from 'node:fs/promises'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { randomBytes } from 'node:crypto'
import { EncfsError } from '../errors/encfs-error.js'
import { policyHostData } from '../attestation/report-data.js'
import { importKey, releasePolicy } from '../skr/import-key.js'
import type { TokenAuthority } from '../emulators/token-authority.js'

const ENCFS_JS = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../bin/encfs.js')

/** What a process of the demo pod sees: the emulators' CA, IMDS, and the pod's security context. */
export interface PodContext {
  caFile: string
  imdsUrl: string
  /** The Key Vault emulator on loopback: a vault only because the operator (the demo) says so (EncfsVaultHosts). */
  vaultHost: string
  policyBase64: string
  /** An empty security-context directory, so that nothing on this machine is taken for the pod's. */
  contextDir: string
}

/** The environment of a process in the demo pod (remotefs, or encfs run as an operator would in it). */
export function podEnvironment(pod: PodContext): NodeJS.ProcessEnv {
  return {
    ...process.env,
    NODE_EXTRA_CA_CERTS: pod.caFile,
    AZURE_POD_IDENTITY_AUTHORITY_HOST: pod.imdsUrl,
    EncfsVaultHosts: pod.vaultHost,
    UVM_SECURITY_CONTEXT_DIR: pod.contextDir,
    UVM_SECURITY_POLICY: pod.policyBase64,
    UVM_REFERENCE_INFO: Buffer.from('encfs demo reference info').toString('base64'),
    // No UVM_HOST_AMD_CERTIFICATE: the simulated chip's own chain is the collateral.
  }
}

export async function makeContextDir(work: string): Promise<string> {
  const dir = path.join(work, 'security-context')
  await mkdir(dir, { recursive: true })
  return dir
}

function runEncfs(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [ENCFS_JS, ...args], { env, timeout: 120_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? Number((err as { code?: unknown }).code ?? 1) || 1 : 0, stdout, stderr }),
    )
  })
}

export interface RefusalDemo {
  pod: PodContext
  maa: string
  akv: string
  akvAudience: string
  /** CAs of the emulators, for the import. */
  ca: string[]
  authority: TokenAuthority
  snpState: string
  out: NodeJS.WritableStream
  step(text: string): void
}

/**
 * What a refused release looks like and how to find out why: a key bound to the pod's previous
 * security policy, `encfs release` refused by the vault, `encfs release --explain` naming the clause.
 */
export async function showRefusedRelease(d: RefusalDemo): Promise<void> {
  const previous = Buffer.from(Buffer.from(d.pod.policyBase64, 'base64').toString().replace('# encfs demo policy', '# encfs demo policy, previous version')).toString('base64')
  const operator = (await d.authority.issue(d.akvAudience, 'demo-operator')).token
  await importKey({
    akvEndpoint: d.akv,
    name: 'encfs-demo-key-previous',
    key: { kty: 'oct-HSM', k: randomBytes(32).toString('base64url'), key_size: 256 },
    bearer: operator,
    ca: d.ca,
    policy: releasePolicy(d.maa, [[{ claim: 'x-ms-sevsnpvm-hostdata', equals: policyHostData(previous).toString('hex') }]]),
  })
  d.step("imported a second key, bound to the pod's previous security policy; releasing it as the pod would:")
  const args = [
    'release',
    '--maa',
    d.maa,
    '--akv',
    d.akv,
    '--kid',
    'encfs-demo-key-previous',
    '--client-id',
    'encfs-demo-pod',
    '--attestation',
    'simulated',
    '--simulated-state',
    d.snpState,
  ]
  const env = podEnvironment(d.pod)
  const refused = await runEncfs(args, env)
  if (refused.code === 0) throw new EncfsError('DEMO_STEP_FAILED', 'the demo expected the vault to refuse encfs-demo-key-previous, and it released it')
  d.out.write(`    $ encfs release --kid encfs-demo-key-previous ...\n    ${refused.stderr.trim().split('\n').at(-1)}\n`)
  d.step("encfs release --explain attests the same way, reads the key's release policy and says which clause fails:")
  const explained = await runEncfs([...args, '--explain'], env)
  if (!explained.stdout.includes('[FAIL]')) throw new EncfsError('DEMO_STEP_FAILED', `encfs release --explain did not explain the refusal: ${explained.stderr.trim()}`)
  d.out.write(`    $ encfs release --kid encfs-demo-key-previous ... --explain\n${explained.stdout.replace(/^/gm, '    ').trimEnd()}\n\n`)
}
