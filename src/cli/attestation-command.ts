import type { Argv } from 'yargs'
import { readFile } from 'node:fs/promises'
import { X509Certificate } from 'node:crypto'
import { commandLogger } from './command-logger.js'
import { UsageError } from './fail.js'
import { MaaError } from '../maa/errors.js'
import { policySigner, type PolicySigner } from '../maa/policy-jws.js'
import { attestationAdminToken, changeSigner, getPolicy, listSigners, resetPolicy, setPolicy, signerThumbprint, type AdminOptions } from '../maa/policy-admin.js'

interface CommonArgs {
  maa: string
  'access-token'?: string
  'client-id'?: string
  'signing-key'?: string
  'signing-cert'?: string
}

async function readText(file: string, what: string): Promise<string> {
  try {
    return await readFile(file, 'utf8')
  } catch (err) {
    throw new MaaError('MAA_POLICY_FILE', `cannot read ${what} ${file}: ${(err as Error).message}`, { cause: err })
  }
}

async function readCertificate(file: string): Promise<X509Certificate> {
  const text = await readText(file, 'the certificate')
  try {
    return new X509Certificate(text)
  } catch (err) {
    throw new MaaError('MAA_POLICY_FILE', `${file} is not a PEM X.509 certificate: ${(err as Error).message}`, { cause: err })
  }
}

async function adminOptions(args: CommonArgs): Promise<AdminOptions & { signer?: PolicySigner }> {
  const logger = commandLogger(args)
  const identity = args['client-id'] ? { client_id: args['client-id'] } : undefined
  const bearer = args['access-token'] || (await attestationAdminToken(args.maa, identity, { logger }))
  const signer =
    args['signing-key'] && args['signing-cert']
      ? policySigner(await readText(args['signing-key'], 'the policy signing key'), await readText(args['signing-cert'], 'the policy signing certificate'))
      : undefined
  return { endpoint: args.maa, bearer, logger, signer }
}

function commonOptions<T>(c: Argv<T>) {
  return c
    .option('maa', { type: 'string', demandOption: true, describe: 'MAA instance host[:port] (no https://)' })
    .option('access-token', { type: 'string', describe: 'bearer token for https://attest.azure.net (default: managed or workload identity)' })
    .option('client-id', { type: 'string', describe: 'user-assigned managed identity client id' })
    .option('signing-key', { type: 'string', describe: 'PEM private key of a policy-management certificate (Isolated-mode instances)' })
    .option('signing-cert', { type: 'string', describe: 'PEM certificate of that key' })
    .implies('signing-key', 'signing-cert')
    .implies('signing-cert', 'signing-key')
}

function policyCommand<T>(y: Argv<T>): Argv<T> {
  return y.command(
    'policy <action>',
    'get, set or reset the attestation policy of an MAA instance (SevSnpVm by default)',
    (c) =>
      commonOptions(c)
        .positional('action', { type: 'string', choices: ['get', 'set', 'reset'] as const, demandOption: true })
        .option('type', {
          type: 'string',
          default: 'SevSnpVm',
          describe: 'attestation type whose policy it is',
          coerce: (t: string) => {
            if (!/^[A-Za-z]+$/.test(t)) throw new UsageError(`--type ${JSON.stringify(t)} is not an attestation type (letters only: SevSnpVm, SgxEnclave, OpenEnclave, Tpm)`)
            return t
          },
        })
        .option('policy-file', { type: 'string', describe: 'set: the policy text (version=1.0; authorizationrules {...}; issuancerules {...};)' }),
    async (args) => {
      const o = await adminOptions(args)
      if (args.action === 'get') {
        const current = await getPolicy(args.type, o)
        process.stdout.write(current.text.endsWith('\n') ? current.text : `${current.text}\n`)
        if (current.signer) process.stderr.write(`signed by ${current.signer.subject.replace(/\n/g, ', ')} (${signerThumbprint(current.signer)})\n`)
        return
      }
      if (args.action === 'set') {
        if (!args['policy-file']) throw new MaaError('MAA_POLICY_FILE', 'encfs attestation policy set needs --policy-file FILE, the policy text')
        const change = await setPolicy(args.type, await readText(args['policy-file'], 'the attestation policy'), o)
        process.stdout.write(
          `${args.type} attestation policy of ${args.maa} updated${o.signer ? ' (signed)' : ''}; x-ms-policy-token-hash ${change.tokenHash} matches the JWS sent\n`,
        )
        return
      }
      const change = await resetPolicy(args.type, o)
      process.stdout.write(`${args.type} attestation policy of ${args.maa} reset to the instance's default; x-ms-policy-token-hash ${change.tokenHash} matches the JWS sent\n`)
    },
  )
}

function signersCommand<T>(y: Argv<T>): Argv<T> {
  return y.command(
    'signers <action>',
    'list, add or remove the policy-management certificates of an Isolated-mode MAA instance',
    (c) =>
      commonOptions(c)
        .positional('action', { type: 'string', choices: ['list', 'add', 'remove'] as const, demandOption: true })
        .option('cert', { type: 'string', describe: 'add/remove: the PEM certificate to add or remove' }),
    async (args) => {
      const o = await adminOptions(args)
      if (args.action === 'list') {
        const signers = await listSigners(o)
        if (signers.length === 0) process.stdout.write(`no policy-management certificates: ${args.maa} is an AAD-mode instance\n`)
        for (const c of signers) process.stdout.write(`${signerThumbprint(c)}  ${c.subject.replace(/\n/g, ', ')}  valid until ${c.validTo}\n`)
        return
      }
      if (!args.cert || !o.signer)
        throw new MaaError(
          'MAA_POLICY_SIGNER',
          `encfs attestation signers ${args.action} needs --cert (the certificate) and --signing-key with --signing-cert (a current policy-management key)`,
        )
      const certificate = await readCertificate(args.cert)
      const thumbprint = await changeSigner(args.action as 'add' | 'remove', certificate, { ...o, signer: o.signer })
      process.stdout.write(`${thumbprint} ${args.action === 'add' ? 'is now' : 'is no longer'} a policy-management certificate of ${args.maa}\n`)
    },
  )
}

/** `encfs attestation policy|signers ...`: Azure Attestation's policy administration (docs/attestation-policy.md). */
export function attestationCommand<T>(y: Argv<T>): Argv<T> {
  return y.command('attestation', 'manage the attestation policy and policy-management certificates of an MAA instance', (c) =>
    signersCommand(policyCommand(c)).demandCommand(1, 'name what to manage: policy or signers'),
  )
}
