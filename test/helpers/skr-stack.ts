import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { createHash } from 'node:crypto'
import os from 'node:os'
import path from 'node:path'
import { TokenAuthority } from '../../src/emulators/token-authority.js'
import { startMaaEmulator, type MaaEmulator } from '../../src/emulators/maa/server.js'
import { startAkvEmulator, type AkvEmulator } from '../../src/emulators/akv/server.js'
import { simulatedProvider, type SimulatedProvider } from '../../src/attestation/providers/simulated.js'
import { parsePemChain } from '../../src/attestation/cert-chain.js'
import { thimChainPem } from '../../src/attestation/thim.js'
import { Collateral } from '../../src/attestation/collateral.js'
import type { UvmInformation } from '../../src/attestation/uvm-info.js'
import { importKey, releasePolicy, type ReleasePolicyClaim } from '../../src/skr/import-key.js'
import type { VaultHost } from '../../src/skr/vault-hosts.js'
import type { ReleaseOptions } from '../../src/skr/release.js'

export interface SkrStack {
  dir: string
  authority: TokenAuthority
  maa: MaaEmulator
  akv: AkvEmulator
  snp: SimulatedProvider
  /** Base64 of the pod's security policy, and its digest (HOST_DATA). */
  policyBase64: string
  hostData: Buffer
  uvm: UvmInformation
  collateral: Collateral
  ca: string[]
  /** The emulators' CA as a PEM file, for NODE_EXTRA_CA_CERTS. */
  caFile: string
  /**
   * What a pod gives a sidecar process run against this stack: the emulators' CA, the security
   * context (policy, reference info, host certificate; no context directory) and, with `imdsUrl`,
   * the identity endpoint.
   */
  podEnv(o?: { imdsUrl?: string }): Record<string, string>
  /** The vault emulator as an operator lists it (releases refuse any other local host), and as env EncfsVaultHosts says it. */
  vaultHosts: VaultHost[]
  vaultHostsEnv: string
  /**
   * Imports `key` (a JWK, or the bytes of an oct key) into the Key Vault emulator as an operator,
   * releasable to this pod (its HOST_DATA) unless other claim groups are given.
   */
  importKey(name: string, key: Record<string, unknown> | Buffer, claims?: ReleasePolicyClaim[][]): Promise<void>
  /** A release of `kid` from the Key Vault emulator by this pod (simulated SNP, the MAA emulator), with `accessToken`: releaseKey's options. */
  releaseOptions(kid: string, accessToken: string): ReleaseOptions
  stop(): Promise<void>
}

/** Simulated SNP + MAA + Key Vault emulators, all in this process. */
export async function startSkrStack(o: { managedHsm?: boolean } = {}): Promise<SkrStack> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'encfs-skr-'))
  const policyBase64 = Buffer.from('package policy\napi_version := "0.10.0"\n').toString('base64')
  const hostData = createHash('sha256').update(Buffer.from(policyBase64, 'base64')).digest()
  const snp = simulatedProvider({ stateDir: path.join(dir, 'snp'), hostData })
  const certs = await snp.thimCerts()
  const authority = await TokenAuthority.create()
  const maa = await startMaaEmulator({ trustedArks: parsePemChain(thimChainPem(certs)).slice(2), authority })
  const akv = await startAkvEmulator({ authority, maaCas: [maa.caPem], managedHsm: o.managedHsm })
  const uvm: UvmInformation = { securityPolicy: policyBase64, referenceInfo: Buffer.from('reference info').toString('base64'), hostAmdCertificate: certs, source: 'environment' }
  const collateral = new Collateral({ uvm })
  const ca = [maa.caPem, akv.caPem]
  const vaultHosts = [{ endpoint: akv.endpoint, audience: akv.audience }]
  const vaultHostsEnv = `${akv.endpoint}=${new URL(akv.audience).host}`
  const caFile = path.join(dir, 'emulators-ca.pem')
  await writeFile(caFile, [maa.caPem, akv.caPem].join(''))
  return {
    dir,
    authority,
    maa,
    akv,
    snp,
    policyBase64,
    hostData,
    uvm,
    collateral,
    ca,
    vaultHosts,
    vaultHostsEnv,
    caFile,
    podEnv: (o = {}) => ({
      NODE_EXTRA_CA_CERTS: caFile,
      UVM_SECURITY_CONTEXT_DIR: path.join(dir, 'no-security-context'),
      UVM_SECURITY_POLICY: policyBase64,
      UVM_REFERENCE_INFO: uvm.referenceInfo,
      UVM_HOST_AMD_CERTIFICATE: Buffer.from(JSON.stringify(certs)).toString('base64'),
      ...(o.imdsUrl ? { AZURE_POD_IDENTITY_AUTHORITY_HOST: o.imdsUrl } : {}),
      EncfsVaultHosts: vaultHostsEnv,
    }),
    async importKey(name, key, claims = [[{ claim: 'x-ms-sevsnpvm-hostdata', equals: hostData.toString('hex') }]]) {
      const bearer = (await authority.issue(akv.audience, 'operator')).token
      const jwk = Buffer.isBuffer(key) ? { kty: 'oct-HSM', k: key.toString('base64url') } : key
      await importKey({ akvEndpoint: akv.endpoint, name, key: jwk, policy: releasePolicy(maa.publicEndpoint, claims), bearer, ca })
    },
    releaseOptions(kid, accessToken) {
      return {
        maaEndpoint: maa.endpoint,
        akvEndpoint: akv.endpoint,
        kid,
        accessToken,
        provider: snp,
        collateral,
        uvm,
        ca,
        vaultHosts,
      }
    },
    async stop() {
      await akv.stop()
      await maa.stop()
      await rm(dir, { recursive: true, force: true })
    },
  }
}
