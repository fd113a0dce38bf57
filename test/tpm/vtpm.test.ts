// The vTPM through tpm2-tss against swtpm: what the PCR policy of the ephemeral key means, errors
// that name what is missing, and the native binding's checks of what it is handed.
import test from 'ava'
import { constants, publicEncrypt, randomBytes } from 'node:crypto'
import { E2eFixture } from '../helpers/e2e.js'
import type { SwtpmVtpm } from '../helpers/swtpm.js'
import { runCommand } from '../../src/process/run.js'
import { Vtpm, ATTESTED_PCRS } from '../../src/tpm/vtpm.js'
import { loadTpmAddon } from '../../src/tpm/addon.js'
import { hasCode } from '../../src/errors/encfs-error.js'

const e2e = new E2eFixture(test)
let vtpm: SwtpmVtpm

test.before(async () => {
  vtpm = await e2e.vtpm(await e2e.skrStack())
})

const oaep = (key: Awaited<ReturnType<Vtpm['ephemeralKey']>>, data: Buffer) =>
  publicEncrypt({ key: key.parsed.key, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, data)

test.serial('the ephemeral key decrypts while the PCRs hold their values, and never after one is extended', async (t) => {
  const tpm = new Vtpm(vtpm.tcti)
  const key = await tpm.ephemeralKey(ATTESTED_PCRS)
  const secret = randomBytes(32)
  t.true((await tpm.decrypt(key, oaep(key, secret), 'oaep-sha256', 'a test secret')).equals(secret))
  // The same template in the same boot is the same key: a later use re-creates it.
  t.true((await tpm.ephemeralKey(ATTESTED_PCRS)).public.equals(key.public))
  await runCommand('tpm2_pcrextend', [`--tcti=${vtpm.directTcti}`, `7:sha256=${'ab'.repeat(32)}`])
  const err = await t.throwsAsync(tpm.decrypt(key, oaep(key, secret), 'oaep-sha256', 'a test secret'))
  t.true(hasCode(err, 'TPM_COMMAND_FAILED'), err?.message)
  t.regex(err!.message, /decrypting a test secret with the ephemeral key .*a policy check failed/)
})

test.serial('a missing NV index is named as not an Azure confidential VM', async (t) => {
  const err = await t.throwsAsync(new Vtpm(vtpm.tcti).nvRead(0x01c00099, 'a test index'))
  t.true(hasCode(err, 'TPM_NOT_CVM'), err?.message)
  t.regex(err!.message, /NV index 0x01c00099 \(a test index\) does not exist: this is not an Azure confidential VM's vTPM/)
})

test('the binding refuses bad arguments before any TPM command', async (t) => {
  const a = loadTpmAddon() as unknown as Record<string, (...args: unknown[]) => Promise<unknown>>
  const cases: [string, () => unknown, RegExp][] = [
    ['tcti not a string', () => a.nvRead!(42, 0x01400001), /tcti must be a string/],
    ['empty tcti', () => a.nvRead!('', 0x01400001), /tcti must be 1 to 512 characters/],
    ['NV index out of range', () => a.nvRead!('device:/dev/null', 0x81000003), /index is out of its handle range/],
    ['fractional handle', () => a.readPublic!('device:/dev/null', 0x81000003 + 0.5), /handle is out of its handle range/],
    ['PCR 24', () => a.pcrRead!('device:/dev/null', [0, 24]), /a PCR number is out of its handle range/],
    ['NaN handle', () => a.readPublic!('device:/dev/null', Number.NaN), /handle is out of its handle range/],
    ['negative PCR', () => a.pcrRead!('device:/dev/null', [-1]), /a PCR number is out of its handle range/],
    ['NV index past 2^32', () => a.nvRead!('device:/dev/null', 2 ** 32 + 0x01400001), /index is out of its handle range/],
    ['PCR twice', () => a.pcrRead!('device:/dev/null', [1, 1]), /pcrs names a PCR twice/],
    ['no PCRs', () => a.pcrRead!('device:/dev/null', []), /pcrs must name 1 to 24 PCRs/],
    ['policy not 32 bytes', () => a.ephemeralKey!('device:/dev/null', Buffer.alloc(31), 0x81000003), /authPolicy must be 32 to 32 bytes/],
    ['ciphertext not 256 bytes', () => a.ephemeralDecrypt!('device:/dev/null', Buffer.alloc(32), [0], Buffer.alloc(255), 'rsaes'), /ciphertext must be 256 to 256 bytes/],
    ['unknown scheme', () => a.ephemeralDecrypt!('device:/dev/null', Buffer.alloc(32), [0], Buffer.alloc(256), 'oaep-sha1'), /scheme must be 'rsaes' or 'oaep-sha256'/],
    ['too much NV data', () => a.nvWrite!('device:/dev/null', 0x01400002, Buffer.alloc(2049)), /data must be 1 to 2048 bytes/],
    ['qualifying data too long', () => a.quote!('device:/dev/null', 0x81000003, Buffer.alloc(65), [0]), /qualifyingData must be 0 to 64 bytes/],
    ['wrong arity', () => a.nvRead!('device:/dev/null'), /nvRead\(tcti, index\)/],
  ]
  for (const [name, call, message] of cases) t.throws(call, { message }, name)
})
