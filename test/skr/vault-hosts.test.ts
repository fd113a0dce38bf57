// Which hosts are sent the pod's vault token: the Azure clouds' vaults, with the audience of the
// suffix they match, and the hosts the operator lists; nothing else, whatever its name contains.
import test from 'ava'
import { trustedVault, vaultHostsFromEnv } from '../../src/skr/vault-hosts.js'

const trust = (endpoint: string, hosts = vaultHostsFromEnv({})) => trustedVault(endpoint, { field: 'annotation.kms_endpoint', hosts })

test('vaults of the public and sovereign clouds are trusted, with the audience of the suffix they match', (t) => {
  t.deepEqual(trust('myvault.vault.azure.net'), { endpoint: 'myvault.vault.azure.net', audience: 'https://vault.azure.net' })
  t.is(trust('MyHsm.ManagedHSM.azure.net').audience, 'https://managedhsm.azure.net')
  t.is(trust('kv-1.vault.azure.cn').audience, 'https://vault.azure.cn')
  t.is(trust('hsm.managedhsm.azure.cn').audience, 'https://managedhsm.azure.cn')
  t.is(trust('kv.vault.usgovcloudapi.net:443').audience, 'https://vault.usgovcloudapi.net')
  t.is(trust('hsm.managedhsm.usgovcloudapi.net').audience, 'https://managedhsm.usgovcloudapi.net')
})

test('anything else is refused naming the field, before a token exists: other hosts, look-alikes, other ports, nested names', (t) => {
  for (const bad of [
    'attacker.example',
    '127.0.0.1:8443',
    'vault.azure.net',
    'evil.com.vault.azure.net',
    'myvault.vault.azure.net.evil.com',
    'myvault.vault.azure.net:8443',
    'managedhsm.evil.com',
    'myvault-vault.azure.net',
    '-x.vault.azure.net',
  ]) {
    const err = t.throws(() => trust(bad), undefined, bad)
    t.is((err as { code?: string }).code, 'SKR_VAULT_UNTRUSTED', bad)
    t.regex(err!.message, /^annotation\.kms_endpoint ".*" is not a Key Vault or Managed HSM of the Azure clouds .*no token is asked for or sent to it.*EncfsVaultHosts/)
  }
})

test('the operator lists more hosts in EncfsVaultHosts, each with the audience of a cloud suffix (default Key Vault); exact matches only', (t) => {
  const hosts = vaultHostsFromEnv({ EncfsVaultHosts: '127.0.0.1:8443, 127.0.0.1:8444=managedhsm.azure.net,kv.internal.example' })
  t.deepEqual(trust('127.0.0.1:8443', hosts), { endpoint: '127.0.0.1:8443', audience: 'https://vault.azure.net' })
  t.is(trust('127.0.0.1:8444', hosts).audience, 'https://managedhsm.azure.net')
  t.is(trust('KV.internal.example', hosts).audience, 'https://vault.azure.net')
  t.throws(() => trust('127.0.0.1:8445', hosts), { message: /is not a Key Vault/ })
  t.throws(() => trust('x.kv.internal.example', hosts), { message: /is not a Key Vault/ })
  t.throws(() => vaultHostsFromEnv({ EncfsVaultHosts: 'https://kv.example' }), { message: /env EncfsVaultHosts: "https:\/\/kv.example" is not host\[:port\]/ })
  t.throws(() => vaultHostsFromEnv({ EncfsVaultHosts: 'kv.example=storage.azure.net' }), { message: /names the audience "storage.azure.net"; it must be one of vault\.azure\.net/ })
})
