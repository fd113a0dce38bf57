import { createHash, createPublicKey, type KeyObject } from 'node:crypto'
import { TpmError } from './errors.js'

/**
 * The few TPM 2.0 structures (TCG TPM 2.0 Library, Part 2) that attestation reads and writes:
 * an RSA public area, an attestation (quote, certify) and the PolicyPCR digest. Read here
 * rather than through tpm2-tss because the verifier side (the MAA emulator, tests) has no TPM.
 */
export const TPM_ALG_RSA = 0x0001
export const TPM_ALG_SHA256 = 0x000b
export const TPM_ALG_NULL = 0x0010
export const TPM_GENERATED_VALUE = 0xff544347
export const TPM_ST_ATTEST_CERTIFY = 0x8017
export const TPM_ST_ATTEST_QUOTE = 0x8018
const TPM_CC_POLICY_PCR = 0x0000017f

/** TPMA_OBJECT bits. */
export const OBJECT = {
  fixedTPM: 1 << 1,
  fixedParent: 1 << 4,
  sensitiveDataOrigin: 1 << 5,
  userWithAuth: 1 << 6,
  adminWithPolicy: 1 << 7,
  noDA: 1 << 10,
  restricted: 1 << 16,
  decrypt: 1 << 17,
  sign: 1 << 18,
} as const

/** Big-endian reads that fail with the structure's name instead of a RangeError. */
class Reader {
  private at = 0
  constructor(
    private readonly b: Buffer,
    private readonly what: string,
  ) {}
  private need(n: number): void {
    if (this.at + n > this.b.length) throw new TpmError('TPM_DATA_INVALID', `${this.what} ends after ${this.b.length} bytes, in the middle of a field`)
  }
  u8(): number {
    this.need(1)
    return this.b.readUInt8(this.at++)
  }
  u16(): number {
    this.need(2)
    const v = this.b.readUInt16BE(this.at)
    this.at += 2
    return v
  }
  u32(): number {
    this.need(4)
    const v = this.b.readUInt32BE(this.at)
    this.at += 4
    return v
  }
  u64(): bigint {
    this.need(8)
    const v = this.b.readBigUInt64BE(this.at)
    this.at += 8
    return v
  }
  bytes(n: number): Buffer {
    this.need(n)
    const v = this.b.subarray(this.at, this.at + n)
    this.at += n
    return v
  }
  sized(): Buffer {
    return this.bytes(this.u16())
  }
  get offset(): number {
    return this.at
  }
  end(): void {
    if (this.at !== this.b.length) throw new TpmError('TPM_DATA_INVALID', `${this.what} has ${this.b.length - this.at} bytes after its end`)
  }
}

export interface RsaPublic {
  nameAlg: number
  attributes: number
  authPolicy: Buffer
  keyBits: number
  exponent: number
  /** The modulus, big-endian. */
  modulus: Buffer
  /** The TPM name: nameAlg (2 bytes) then the hash of the TPMT_PUBLIC. */
  name: Buffer
  key: KeyObject
}

/** A TPM2B_PUBLIC (size, then TPMT_PUBLIC) of an RSA key. */
export function parseRsaPublic(tpm2b: Buffer, what = 'the TPM public area'): RsaPublic {
  const outer = new Reader(tpm2b, what)
  const area = outer.sized()
  outer.end()
  const r = new Reader(area, what)
  const type = r.u16()
  if (type !== TPM_ALG_RSA) throw new TpmError('TPM_DATA_INVALID', `${what} is of algorithm 0x${type.toString(16)}, not RSA`)
  const nameAlg = r.u16()
  const attributes = r.u32()
  const authPolicy = r.sized()
  const symmetric = r.u16()
  if (symmetric !== TPM_ALG_NULL) r.bytes(4) // keyBits and mode of a storage key's symmetric definition
  const scheme = r.u16()
  if (scheme !== TPM_ALG_NULL) r.u16() // the scheme's hash
  const keyBits = r.u16()
  const exponent = r.u32() || 65537
  const modulus = r.sized()
  r.end()
  if (nameAlg !== TPM_ALG_SHA256) throw new TpmError('TPM_DATA_INVALID', `${what} names its key with algorithm 0x${nameAlg.toString(16)}, not SHA-256`)
  const e = Buffer.alloc(4)
  e.writeUInt32BE(exponent)
  const key = createPublicKey({ key: { kty: 'RSA', n: modulus.toString('base64url'), e: e.subarray(e.findIndex((x) => x !== 0)).toString('base64url') }, format: 'jwk' })
  const name = Buffer.concat([Buffer.from([0, TPM_ALG_SHA256]), createHash('sha256').update(area).digest()])
  return { nameAlg, attributes, authPolicy: Buffer.from(authPolicy), keyBits, exponent, modulus: Buffer.from(modulus), name, key }
}

export interface PcrSelection {
  hash: number
  pcrs: number[]
}

export interface Attestation {
  type: number
  qualifiedSigner: Buffer
  extraData: Buffer
  clock: bigint
  firmwareVersion: bigint
  /** TPMS_QUOTE_INFO: the selection and the digest of the selected PCRs. */
  quote?: { selections: PcrSelection[]; pcrDigest: Buffer }
  /** TPMS_CERTIFY_INFO: the certified object's name. */
  certify?: { name: Buffer; qualifiedName: Buffer }
}

/** The TPMS_ATTEST a quote or a certify signs (the bytes the signature covers). */
export function parseAttestation(raw: Buffer, what = 'the TPM attestation'): Attestation {
  const r = new Reader(raw, what)
  const magic = r.u32()
  if (magic !== TPM_GENERATED_VALUE) throw new TpmError('TPM_DATA_INVALID', `${what} does not start with TPM_GENERATED_VALUE (found 0x${magic.toString(16)}): not made by a TPM`)
  const type = r.u16()
  const qualifiedSigner = r.sized()
  const extraData = r.sized()
  const clock = r.u64()
  r.bytes(4 + 4 + 1) // resetCount, restartCount, safe
  const firmwareVersion = r.u64()
  const a: Attestation = { type, qualifiedSigner, extraData, clock, firmwareVersion }
  if (type === TPM_ST_ATTEST_QUOTE) {
    const selections = readPcrSelections(r)
    a.quote = { selections, pcrDigest: r.sized() }
  } else if (type === TPM_ST_ATTEST_CERTIFY) {
    a.certify = { name: r.sized(), qualifiedName: r.sized() }
  } else throw new TpmError('TPM_DATA_INVALID', `${what} is of type 0x${type.toString(16)}, neither a quote nor a certification`)
  r.end()
  return a
}

function readPcrSelections(r: Reader): PcrSelection[] {
  const count = r.u32()
  if (count > 16) throw new TpmError('TPM_DATA_INVALID', `a PCR selection list of ${count} banks`)
  const out: PcrSelection[] = []
  for (let i = 0; i < count; i++) {
    const hash = r.u16()
    const bits = r.bytes(r.u8())
    const pcrs: number[] = []
    bits.forEach((byte, j) => {
      for (let b = 0; b < 8; b++) if (byte & (1 << b)) pcrs.push(j * 8 + b)
    })
    out.push({ hash, pcrs })
  }
  return out
}

/** TPML_PCR_SELECTION of one SHA-256 bank, three bytes of bitmap (PCRs 0-23). */
export function pcrSelection(pcrs: readonly number[]): Buffer {
  const b = Buffer.from([0, 0, 0, 1, 0, TPM_ALG_SHA256, 3, 0, 0, 0])
  for (const p of pcrs) b[7 + (p >> 3)]! |= 1 << (p & 7)
  return b
}

/** SHA-256 over the PCR values in ascending PCR order, as a quote's pcrDigest and PolicyPCR take them. */
export function pcrDigest(values: ReadonlyMap<number, Buffer>): Buffer {
  const h = createHash('sha256')
  for (const p of [...values.keys()].sort((a, b) => a - b)) h.update(values.get(p)!)
  return h.digest()
}

/** The policy digest of a session that ran PolicyPCR once over `values` (Part 3, TPM2_PolicyPCR). */
export function policyPcrDigest(values: ReadonlyMap<number, Buffer>): Buffer {
  const cc = Buffer.alloc(4)
  cc.writeUInt32BE(TPM_CC_POLICY_PCR)
  return createHash('sha256')
    .update(Buffer.concat([Buffer.alloc(32), cc, pcrSelection([...values.keys()]), pcrDigest(values)]))
    .digest()
}
