import { loadTpmAddon, type SignedAttestation, type TpmAddon, type TpmAddonError } from './addon.js'
import { TpmError } from './errors.js'
import { parseRsaPublic, policyPcrDigest, type RsaPublic } from './structures.js'

/**
 * Where an Azure confidential VM's paravisor keeps attestation material in its vTPM
 * (docs/attestation.md#vtpm), as Azure's guest attestation library and azure-cvm-tooling read it.
 */
export const AZURE_VTPM = {
  /** The HCL report, refreshed by the paravisor when user data is written to `userData`. */
  hclReport: 0x01400001,
  userData: 0x01400002,
  /** The attestation key's certificate (DER), issued by Azure's vTPM CA. */
  akCert: 0x01c101d0,
  /** The attestation key: RSA-2048, restricted, RSASSA-SHA256. */
  ak: 0x81000003,
} as const

/** The PCRs Azure's guest attestation quotes and binds the ephemeral key to on Linux. */
export const ATTESTED_PCRS: readonly number[] = [0, 1, 2, 3, 4, 5, 6, 7]

/** The kernel's TPM resource manager: several users at once, each one's objects flushed when it closes. */
export const DEFAULT_TCTI = 'device:/dev/tpmrm0'

const hex = (n: number) => `0x${n.toString(16).padStart(8, '0')}`

/** TPM_RC_HANDLE in any handle or parameter position: the index or key is not there. */
const isMissingHandle = (rc: number) => (rc & 0x80) !== 0 && (rc & 0x3f) === 0x0b

export interface EphemeralKey extends SignedAttestation {
  /** TPM2B_PUBLIC of the key, as the TPM marshals it. */
  public: Buffer
  parsed: RsaPublic
  /** The PolicyPCR digest it is bound to, and the PCR values it was computed from. */
  authPolicy: Buffer
  pcrs: Map<number, Buffer>
}

/**
 * One TPM reached through a TCTI: `device:/dev/tpmrm0` on a confidential VM, `swtpm:host=...,port=...`
 * against a software TPM. Every command goes through tpm2-tss's TCTI loader, so production and
 * the tests run the same code and differ in this string only.
 */
export class Vtpm {
  constructor(readonly tcti: string) {}

  private async call<T>(what: string, run: (addon: TpmAddon) => Promise<T>, missing?: string): Promise<T> {
    const addon = loadTpmAddon()
    try {
      return await run(addon)
    } catch (err) {
      const e = err as Partial<TpmAddonError>
      if (typeof e.rc !== 'number') throw err
      if (e.tcti) {
        throw new TpmError(
          'TPM_UNAVAILABLE',
          `cannot open the TPM at ${this.tcti} (${e.message}): on a confidential VM map /dev/tpmrm0 into the container; set --tpm-tcti otherwise`,
          {
            cause: err,
          },
        )
      }
      if (missing && isMissingHandle(e.rc)) throw new TpmError('TPM_NOT_CVM', `${missing}: this is not an Azure confidential VM's vTPM (${e.message})`, { cause: err })
      throw new TpmError('TPM_COMMAND_FAILED', `${what} on ${this.tcti} failed: ${e.message} (response code 0x${e.rc.toString(16)})`, { cause: err })
    }
  }

  async nvRead(index: number, what: string): Promise<Buffer> {
    return (await this.call(`reading NV index ${hex(index)} (${what})`, (a) => a.nvRead(this.tcti, index), `NV index ${hex(index)} (${what}) does not exist`)).data
  }

  async nvWrite(index: number, data: Buffer, what: string): Promise<void> {
    await this.call(`writing NV index ${hex(index)} (${what})`, (a) => a.nvWrite(this.tcti, index, data))
  }

  async attestationKey(): Promise<{ public: Buffer; parsed: RsaPublic }> {
    const pub = (await this.call('reading the attestation key', (a) => a.readPublic(this.tcti, AZURE_VTPM.ak), `no attestation key at ${hex(AZURE_VTPM.ak)}`)).public
    return { public: pub, parsed: parseRsaPublic(pub, 'the attestation key') }
  }

  async pcrValues(pcrs: readonly number[]): Promise<Map<number, Buffer>> {
    const values = await this.call('reading PCRs', (a) => a.pcrRead(this.tcti, [...pcrs]))
    return new Map(
      pcrs.map((p) => {
        const value = values[String(p)]
        if (!value) throw new TpmError('TPM_DATA_INVALID', `the TPM answered no value for PCR ${p}`)
        return [p, value]
      }),
    )
  }

  quote(qualifyingData: Buffer, pcrs: readonly number[]): Promise<SignedAttestation> {
    return this.call('quoting PCRs with the attestation key', (a) => a.quote(this.tcti, AZURE_VTPM.ak, qualifyingData, [...pcrs]), `no attestation key at ${hex(AZURE_VTPM.ak)}`)
  }

  /** The ephemeral encryption key for the PCRs as they are now, certified by the attestation key. */
  async ephemeralKey(pcrs: readonly number[]): Promise<EphemeralKey> {
    const values = await this.pcrValues(pcrs)
    const authPolicy = policyPcrDigest(values)
    const k = await this.call('creating and certifying the ephemeral key', (a) => a.ephemeralKey(this.tcti, authPolicy, AZURE_VTPM.ak))
    return { ...k, parsed: parseRsaPublic(k.public, 'the ephemeral key'), authPolicy, pcrs: values }
  }

  /** Decrypts with the ephemeral key; the TPM refuses (a policy failure) if the PCRs moved since. */
  async decrypt(key: EphemeralKey, ciphertext: Buffer, scheme: 'rsaes' | 'oaep-sha256', what: string): Promise<Buffer> {
    const out = await this.call(`decrypting ${what} with the ephemeral key`, (a) => a.ephemeralDecrypt(this.tcti, key.authPolicy, [...key.pcrs.keys()], ciphertext, scheme))
    return out.plaintext
  }
}
