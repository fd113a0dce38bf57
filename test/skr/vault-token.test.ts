// A vault token that cannot be had says so in the vault's words: which resource, which key
// operation, what the identity needs there; not the storage account's.
import test from 'ava'
import { vaultToken } from '../../src/skr/vault-token.js'
import { trustedVault } from '../../src/skr/vault-hosts.js'
import { SkrError } from '../../src/skr/errors.js'

// Workload identity with a token file that does not exist: the credential fails at once, without
// a network round trip (the variables are this test process's own).
process.env.AZURE_CLIENT_ID = '11111111-2222-3333-4444-555555555555'
process.env.AZURE_TENANT_ID = '66666666-7777-8888-9999-000000000000'
process.env.AZURE_FEDERATED_TOKEN_FILE = '/nonexistent/encfs-test-token'

const vault = (endpoint: string) => trustedVault(endpoint, { field: 'key.akv.endpoint', hosts: [] })

test('a vault token failure names the vault and the release permission, not blob storage', async (t) => {
  const err = await t.throwsAsync(vaultToken(vault('myvault.vault.azure.net'), undefined, { retries: 2, retryDelayMs: 1 }), { instanceOf: SkrError })
  t.is(err?.code, 'SKR_IDENTITY')
  t.regex(String(err?.message), /https:\/\/vault\.azure\.net/)
  t.regex(String(err?.message), /myvault\.vault\.azure\.net/)
  t.regex(String(err?.message), /workload identity \(client 11111111-2222-3333-4444-555555555555\)/)
  t.regex(String(err?.message), /after 2 attempts/)
  t.regex(String(err?.message), /release/)
  t.notRegex(String(err?.message), /blob storage|storage account/)
})

test('a token for importing a key names the import permission', async (t) => {
  const err = await t.throwsAsync(vaultToken(vault('myhsm.managedhsm.azure.net'), undefined, { retries: 1, retryDelayMs: 1, purpose: 'import' }), { instanceOf: SkrError })
  t.is(err?.code, 'SKR_IDENTITY')
  t.regex(String(err?.message), /https:\/\/managedhsm\.azure\.net/)
  t.regex(String(err?.message), /import/)
  t.notRegex(String(err?.message), /blob storage|storage account/)
})
