import { SkrError } from './errors.js'

/**
 * Which hosts may be sent the pod's vault token and MAA token: Key Vault and Managed HSM of the
 * public and sovereign Azure clouds, and what the operator lists in EncfsVaultHosts (emulators,
 * a vault under another name). The endpoint of a key release comes from an image's annotation,
 * an API caller or the configuration; a vault token minted for the pod's identity works against
 * every vault the identity can reach, so it must never go to whoever wrote that name.
 */

/** A host that is trusted as a vault, and the token audience it takes. */
export interface VaultHost {
  /** `host` (any port is refused but 443) for a cloud suffix match, `host[:port]` as configured. */
  endpoint: string
  audience: string
}

/** The vault DNS suffixes of the Azure clouds (public, China, US Government); a vault's token audience is https:// plus its suffix. */
export const CLOUD_VAULT_SUFFIXES = [
  'vault.azure.net',
  'managedhsm.azure.net',
  'vault.azure.cn',
  'managedhsm.azure.cn',
  'vault.usgovcloudapi.net',
  'managedhsm.usgovcloudapi.net',
] as const

/** Where the operator lists further vault hosts: `host[:port][=<cloud suffix>]`, comma-separated. */
export const VAULT_HOSTS_ENV = 'EncfsVaultHosts'

const LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/
const HOST_PORT = /^(?:\[[0-9a-f:.]+\]|[a-z0-9.-]+)(?::(\d{1,5}))?$/

/**
 * The operator's vault hosts from `EncfsVaultHosts` ("127.0.0.1:8443,127.0.0.1:8444=managedhsm.azure.net"):
 * each takes the token audience of the cloud suffix after `=` (default vault.azure.net).
 */
export function vaultHostsFromEnv(env: NodeJS.ProcessEnv = process.env): VaultHost[] {
  const value = env[VAULT_HOSTS_ENV]?.trim()
  if (!value) return []
  return value.split(',').map((entry) => {
    const [endpoint = '', suffix = 'vault.azure.net', ...rest] = entry.trim().toLowerCase().split('=')
    if (!HOST_PORT.test(endpoint) || rest.length > 0) {
      throw new SkrError(
        'SKR_VAULT_HOSTS_INVALID',
        `env ${VAULT_HOSTS_ENV}: "${entry.trim()}" is not host[:port][=<vault suffix>] (for example 127.0.0.1:8443 or myhsm.example:443=managedhsm.azure.net)`,
      )
    }
    if (!(CLOUD_VAULT_SUFFIXES as readonly string[]).includes(suffix)) {
      throw new SkrError(
        'SKR_VAULT_HOSTS_INVALID',
        `env ${VAULT_HOSTS_ENV}: "${entry.trim()}" names the audience "${suffix}"; it must be one of ${CLOUD_VAULT_SUFFIXES.join(', ')}`,
      )
    }
    return { endpoint, audience: `https://${suffix}` }
  })
}

/**
 * The vault `endpoint` (host[:port], as key.akv.endpoint, akv_endpoint and kms_endpoint give it)
 * as a trusted vault with its token audience, or SKR_VAULT_UNTRUSTED naming `field`, before any
 * token is asked for or sent. A cloud vault is `<name>.<suffix>` on port 443; an operator's host
 * matches exactly.
 */
export function trustedVault(endpoint: string, o: { field: string; hosts?: readonly VaultHost[] }): VaultHost {
  const given = endpoint.trim().toLowerCase()
  const configured = (o.hosts ?? vaultHostsFromEnv()).find((h) => h.endpoint === given)
  if (configured) return configured
  const m = HOST_PORT.exec(given)
  const port = m?.[1]
  const host = port !== undefined ? given.slice(0, -(port.length + 1)) : given
  if (m && (port === undefined || port === '443')) {
    for (const suffix of CLOUD_VAULT_SUFFIXES) {
      const name = host.endsWith(`.${suffix}`) ? host.slice(0, -(suffix.length + 1)) : undefined
      if (name !== undefined && LABEL.test(name)) return { endpoint: given, audience: `https://${suffix}` }
    }
  }
  throw new SkrError(
    'SKR_VAULT_UNTRUSTED',
    `${o.field} "${endpoint}" is not a Key Vault or Managed HSM of the Azure clouds (<name>.${CLOUD_VAULT_SUFFIXES.join(', <name>.')}), nor listed in ${VAULT_HOSTS_ENV}: ` +
      "no token is asked for or sent to it (a vault token works against every vault the pod's identity can reach). If it is a vault you run, add it to " +
      `${VAULT_HOSTS_ENV} (host[:port][=<vault suffix>])`,
  )
}
