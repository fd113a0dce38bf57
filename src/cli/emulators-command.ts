import type { Argv } from 'yargs'
import { mkdir, rm, writeFile } from 'node:fs/promises'
import path from 'node:path'
import os from 'node:os'
import { commandLogger } from './command-logger.js'
import { TokenAuthority } from '../emulators/token-authority.js'
import { startImdsEmulator } from '../emulators/imds/server.js'
import { startMaaEmulator } from '../emulators/maa/server.js'
import { startAkvEmulator } from '../emulators/akv/server.js'
import { simulatedProvider, defaultSimulatedStateDir } from '../attestation/providers/simulated.js'
import { parsePemChain } from '../attestation/cert-chain.js'
import { thimChainPem } from '../attestation/thim.js'
import { createSigningCertificate } from '../emulators/pki.js'

export function emulatorsCommand<T>(y: Argv<T>): Argv<T> {
  return y.command(
    'emulators',
    'run the MAA, Key Vault, Managed HSM and IMDS emulators on loopback (TLS with a local CA) until Ctrl-C',
    (c) =>
      c
        .option('dir', { type: 'string', default: path.join(os.tmpdir(), 'encfs-emulators'), describe: 'where the CA file and endpoints.json are written' })
        .option('simulated-state', { type: 'string', default: defaultSimulatedStateDir(), describe: 'the simulated SNP chip whose ARK the MAA emulator trusts' })
        .option('trust-any-ark', { type: 'boolean', default: false, describe: 'let MAA accept any self-consistent AMD-style chain' })
        .option('isolated', {
          type: 'boolean',
          default: false,
          describe: 'run MAA in Isolated mode: policy changes must be signed; a policy-management key and certificate are written to --dir',
        }),
    async (args) => {
      const logger = commandLogger(args, 'emulators', 'info')
      const authority = await TokenAuthority.create()
      const arks = args['trust-any-ark'] ? undefined : parsePemChain(thimChainPem(await simulatedProvider({ stateDir: args['simulated-state'], logger }).thimCerts())).slice(2)
      await mkdir(args.dir, { recursive: true })
      const signer = args.isolated ? await createSigningCertificate('encfs emulator policy signer') : undefined
      if (signer) {
        await writeFile(path.join(args.dir, 'policy-signer.key.pem'), signer.keyPem, { mode: 0o600 })
        await writeFile(path.join(args.dir, 'policy-signer.cert.pem'), signer.certPem)
      }
      const maa = await startMaaEmulator({ trustedArks: arks, logger, authority, policyMode: signer ? 'Isolated' : 'AAD', policySigners: signer ? [signer.certPem] : [] })
      const akv = await startAkvEmulator({ authority, maaCas: [maa.caPem], logger })
      const hsm = await startAkvEmulator({ authority, maaCas: [maa.caPem], managedHsm: true, logger })
      const imds = await startImdsEmulator(authority, { logger })
      const caFile = path.join(args.dir, 'ca.pem')
      await writeFile(caFile, maa.caPem + akv.caPem + hsm.caPem)
      const endpoints = {
        maa: maa.endpoint,
        maaPolicyMode: maa.policies.mode,
        ...(signer ? { policySigningKey: path.join(args.dir, 'policy-signer.key.pem'), policySigningCert: path.join(args.dir, 'policy-signer.cert.pem') } : {}),
        akv: akv.endpoint,
        managedHsm: hsm.endpoint,
        imds: imds.url,
        caFile,
        simulatedState: args['simulated-state'],
      }
      await writeFile(path.join(args.dir, 'endpoints.json'), `${JSON.stringify(endpoints, null, 2)}\n`)
      process.stdout.write(
        `${JSON.stringify(endpoints, null, 2)}\n\n` +
          `export NODE_EXTRA_CA_CERTS=${caFile}\nexport AZURE_POD_IDENTITY_AUTHORITY_HOST=${imds.url}\n` +
          `export EncfsVaultHosts=${akv.endpoint},${hsm.endpoint}=managedhsm.azure.net\n` +
          `# key.authority.endpoint=${maa.endpoint}  key.akv.endpoint=${akv.endpoint} (or ${hsm.endpoint} for a managed HSM)\n`,
      )
      await new Promise<void>((resolve) => {
        process.once('SIGINT', resolve)
        process.once('SIGTERM', resolve)
      })
      await Promise.all([imds.stop(), hsm.stop(), akv.stop(), maa.stop()])
      // The policy-management key means nothing once its emulator is gone.
      if (signer) await Promise.all(['policy-signer.key.pem', 'policy-signer.cert.pem'].map((f) => rm(path.join(args.dir, f), { force: true })))
    },
  )
}
