import { DEFAULT_TCTI } from '../tpm/vtpm.js'
import type { Argv } from 'yargs'
import { commandLogger } from './command-logger.js'
import { ATTESTATION_MODES } from '../attestation/providers/provider.js'
import { defaultSimulatedStateDir } from '../attestation/providers/simulated.js'
import { AttestationContext } from '../attestation/context.js'
import { releaseKey } from '../skr/release.js'
import { explainRelease } from '../skr/explain.js'
import { SkrError } from '../skr/errors.js'
import { DEFAULT_DERIVATION_LABEL } from '../skr/derive.js'
import { filesystemKey } from '../keys/filesystem-key.js'
import { openSource } from '../storage/open-source.js'
import { readLuksHeader } from '../luks/header.js'
import { unlockAnyVolumeKey } from '../luks/volume-key.js'

export function releaseCommand<T>(y: Argv<T>): Argv<T> {
  return y.command(
    'release',
    'release a key by secure key release (SNP report -> MAA -> Key Vault / Managed HSM) and print it as a JWK; --check-image tells whether it opens an image; --explain says why a release is refused',
    (c) =>
      c
        .option('maa', { type: 'string', demandOption: true, describe: 'MAA endpoint host[:port] (key.authority.endpoint)' })
        .option('akv', { type: 'string', demandOption: true, describe: 'Key Vault / Managed HSM host[:port] (key.akv.endpoint)' })
        .option('kid', { type: 'string', demandOption: true, describe: 'key name, or name/version' })
        .option('access-token', { type: 'string', describe: 'bearer token for the vault (default: managed or workload identity)' })
        .option('client-id', { type: 'string', describe: 'user-assigned managed identity client id' })
        .option('attestation', { type: 'string', choices: ATTESTATION_MODES, default: process.env.EncfsAttestation || 'auto' })
        .option('simulated-state', { type: 'string', default: defaultSimulatedStateDir() })
        .option('tpm-tcti', { type: 'string', default: process.env.EncfsTpmTcti || DEFAULT_TCTI, describe: 'the TPM of --attestation vtpm, as a tpm2-tss TCTI (env EncfsTpmTcti)' })
        .option('check-image', { type: 'string', describe: 'blob URL (SAS ok), file:// URL or path of a LUKS2 image: does the released key open it?' })
        .option('salt', { type: 'string', default: '', describe: 'key_derivation.salt (hex) for RSA keys with --check-image' })
        .option('label', { type: 'string', default: DEFAULT_DERIVATION_LABEL, describe: 'key_derivation.label for RSA keys with --check-image' })
        .option('private', { type: 'boolean', default: false, describe: 'read --check-image with the managed / workload identity' })
        // No default: yargs counts a defaulted flag as given, and would call every --check-image a conflict.
        .option('explain', {
          type: 'boolean',
          describe: "do not release: attest, verify the token, read the key's release policy and say which clause holds or fails, and why",
        })
        .conflicts('explain', 'check-image'),
    async (args) => {
      const logger = commandLogger(args)
      const { provider, uvm, collateral } = await new AttestationContext({
        attestation: args.attestation,
        simulatedStateDir: args['simulated-state'],
        tpmTcti: args['tpm-tcti'],
        logger,
      }).ready()
      const identity = args['client-id'] ? { client_id: args['client-id'] } : undefined
      const o = {
        maaEndpoint: args.maa,
        akvEndpoint: args.akv,
        akvField: '--akv',
        kid: args.kid,
        accessToken: args['access-token'],
        identity,
        provider,
        uvm,
        collateral,
        logger,
      }
      if (args.explain) {
        const { evaluation, lines } = await explainRelease(o)
        process.stdout.write(`${lines.join('\n')}\n`)
        if (!evaluation.ok)
          throw new SkrError('SKR_POLICY_UNSATISFIED', `the release policy of ${args.kid} does not allow release to this attestation (the failing clauses are above)`)
        return
      }
      const released = await releaseKey(o)
      try {
        // The operator asked for the key: it goes to stdout, never to the log.
        process.stdout.write(`${JSON.stringify(released.jwk())}\n`)
        if (args['check-image']) {
          const key = filesystemKey(released, { salt: args.salt, label: args.label }, `the released key ${args.kid}`)
          const source = await openSource(args['check-image'], { private: args.private, logger })
          try {
            const header = await readLuksHeader(source, { logger })
            const { volumeKey, keyslot } = await unlockAnyVolumeKey(source, header, key, { logger })
            volumeKey.fill(0)
            process.stderr.write(`the released key opens keyslot ${keyslot} of the image\n`)
          } finally {
            key.fill(0)
            await source.close()
          }
        }
      } finally {
        released.material.fill(0)
      }
    },
  )
}
