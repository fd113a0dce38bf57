// TPM structures read without a TPM: a real quote from an Azure confidential VM's vTPM
// (test/vectors/cvm/quote.bin and akpub.pem, from kinvolk/azure-cvm-tooling) and the PolicyPCR digest.
import test from 'ava'
import { createHash, createPublicKey, verify } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { vector } from '../helpers/vectors.js'
import { parseAttestation, pcrDigest, policyPcrDigest, pcrSelection, TPM_ALG_SHA256, TPM_ST_ATTEST_QUOTE } from '../../src/tpm/structures.js'
import { hasCode } from '../../src/errors/encfs-error.js'

/** quote.bin is the Rust crate's serialized Quote: signature, message, PCR values, each length-prefixed (u64 LE). */
function realQuote(): { signature: Buffer; message: Buffer; pcrs: Buffer[] } {
  const b = readFileSync(vector('cvm', 'quote.bin'))
  let at = 0
  const take = (n: number) => {
    at += n
    return b.subarray(at - n, at)
  }
  const sized = () => take(Number(take(8).readBigUInt64LE()))
  const signature = sized()
  const message = sized()
  const count = Number(take(8).readBigUInt64LE())
  return { signature, message, pcrs: Array.from({ length: count }, () => take(32)) }
}

test('a real vTPM quote parses: SHA-256 bank, PCRs 0-23, the nonce "challenge", a digest of the PCR values', (t) => {
  const q = realQuote()
  const a = parseAttestation(q.message)
  t.is(a.type, TPM_ST_ATTEST_QUOTE)
  t.is(a.extraData.toString(), 'challenge')
  t.deepEqual(a.quote?.selections, [{ hash: TPM_ALG_SHA256, pcrs: Array.from({ length: 24 }, (_, i) => i) }])
  t.true(a.quote?.pcrDigest.equals(pcrDigest(new Map(q.pcrs.map((v, i) => [i, v])))))
})

test("a real vTPM quote's signature verifies with the AK (RSASSA-SHA256), and not once altered", (t) => {
  const q = realQuote()
  const ak = createPublicKey(readFileSync(vector('cvm', 'akpub.pem')))
  t.true(verify('sha256', q.message, ak, q.signature))
  const altered = Buffer.from(q.message)
  altered[altered.length - 1]! ^= 1
  t.false(verify('sha256', altered, ak, q.signature))
})

test('a truncated or foreign attestation is refused naming the structure', (t) => {
  const q = realQuote()
  const short = t.throws(() => parseAttestation(q.message.subarray(0, 40), 'the quote'))
  t.true(hasCode(short, 'TPM_DATA_INVALID'))
  t.regex(short!.message, /^the quote ends after 40 bytes/)
  const foreign = Buffer.from(q.message)
  foreign.writeUInt32BE(0x12345678, 0)
  t.regex(t.throws(() => parseAttestation(foreign))!.message, /not made by a TPM/)
})

test('the PolicyPCR digest is SHA-256(zeros || TPM_CC_PolicyPCR || selection || digest of the values)', (t) => {
  const values = new Map([0, 1, 2].map((i) => [i, createHash('sha256').update(`pcr ${i}`).digest()]))
  t.deepEqual([...pcrSelection([0, 1, 2])], [0, 0, 0, 1, 0, 0x0b, 3, 0x07, 0, 0])
  const expected = createHash('sha256')
    .update(Buffer.concat([Buffer.alloc(32), Buffer.from('0000017f', 'hex'), pcrSelection([0, 1, 2]), pcrDigest(values)]))
    .digest()
  t.true(policyPcrDigest(values).equals(expected))
})
