import type { Logger } from '../log/logger.js'
import type { IdentityConfig } from '../identity/credential.js'
import type { AttestationContext } from '../attestation/context.js'
import { releaseKey } from '../skr/release.js'
import type { VaultHost } from '../skr/vault-hosts.js'
import { filesystemKey } from './filesystem-key.js'
import { decodeRawKey } from './raw-key.js'
import type { KeyProvider } from './provider.js'
import type { MaaUserAgent } from '../maa/user-agent.js'

export interface ReleaseProviderOptions {
  attestation: AttestationContext
  identity?: IdentityConfig
  logger: Logger
  /** Extra CAs for MAA and the vault (the emulators' CA); production relies on NODE_EXTRA_CA_CERTS. */
  ca?: string[]
  /** The process's MAA User-Agent. */
  maaUserAgent?: MaaUserAgent
  /** The operator's vault hosts (default: env EncfsVaultHosts); key.akv.endpoint must be one, or a cloud vault. */
  vaultHosts?: readonly VaultHost[]
}

/** Attempts per MAA and vault request when remotefs releases a filesystem key (docs/startup-storms.md). */
export const STARTUP_RELEASE_ATTEMPTS = 8

/**
 * Keys for filesystems by secure key release, turned into filesystem keys by filesystemKey().
 * Attestation is set up on first use, so raw-key-only configurations never touch SNP.
 */
export function releaseKeyProvider(o: ReleaseProviderOptions): KeyProvider {
  return {
    async keyFor(spec, { index, logger, signal }) {
      if (spec.kind === 'raw') return decodeRawKey(spec.hex, `azure_filesystems[${index}]`)
      const { provider, uvm, collateral } = await o.attestation.ready()
      const released = await releaseKey({
        maaEndpoint: spec.maaEndpoint,
        akvEndpoint: spec.akvEndpoint,
        akvField: `azure_filesystems[${index}].key.akv.endpoint`,
        vaultHosts: o.vaultHosts,
        kid: spec.kid,
        ...(spec.kty ? { kty: spec.kty } : {}),
        accessToken: spec.bearerToken,
        identity: o.identity,
        provider,
        collateral,
        uvm,
        ca: o.ca,
        maaUserAgent: o.maaUserAgent?.value,
        logger,
        signal,
        // Start-up has nothing better to do than to wait for a throttled MAA or vault (many pods
        // starting at once): more attempts than an API caller gets, each after Retry-After.
        attempts: STARTUP_RELEASE_ATTEMPTS,
      })
      try {
        return filesystemKey(released, spec.derivation, `azure_filesystems[${index}].key: the released key ${spec.kid}`)
      } finally {
        released.material.fill(0)
      }
    },
  }
}
