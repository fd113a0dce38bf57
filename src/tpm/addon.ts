import { addonLoader } from '../process/load-addon.js'

/** A failed call: the ESAPI step, the TPM (or TSS) response code, and whether the TPM was unreachable. */
export interface TpmAddonError extends Error {
  rc: number
  step: string
  tcti: boolean
}

/** The signed bytes of a quote or certification (TPMS_ATTEST) and the raw RSASSA signature. */
export interface SignedAttestation {
  attest: Buffer
  signature: Buffer
}

/** native/tpm: each call opens the TCTI, runs its commands on a libuv worker and closes it. */
export interface TpmAddon {
  nvRead(tcti: string, index: number): Promise<{ data: Buffer }>
  nvWrite(tcti: string, index: number, data: Buffer): Promise<Record<string, never>>
  readPublic(tcti: string, handle: number): Promise<{ public: Buffer }>
  quote(tcti: string, akHandle: number, qualifyingData: Buffer, pcrs: number[]): Promise<SignedAttestation>
  /** SHA-256 PCR values, keyed by PCR number. */
  pcrRead(tcti: string, pcrs: number[]): Promise<Record<string, Buffer>>
  /** Creates the PCR-policy ephemeral key in the NULL hierarchy and certifies it with the AK. */
  ephemeralKey(tcti: string, authPolicy: Buffer, akHandle: number): Promise<SignedAttestation & { public: Buffer }>
  ephemeralDecrypt(tcti: string, authPolicy: Buffer, pcrs: number[], ciphertext: Buffer, scheme: 'rsaes' | 'oaep-sha256'): Promise<{ plaintext: Buffer }>
}

/** The tpm2-tss binding built from native/tpm by npm run setup (libtss2-dev to build; libtss2-esys, -tctildr and a TCTI to run). */
export const loadTpmAddon = addonLoader<TpmAddon>({
  file: '../../../native/tpm/build/Release/encfs_tpm.node',
  code: 'TPM_ADDON_MISSING',
  notBuilt: 'the TPM addon is not built (npm run setup builds it when libtss2-dev is installed: apt-get install libtss2-dev)',
  notLoading: "the TPM addon does not load (it needs Debian's libtss2-esys-3.0.2-0, libtss2-tctildr0 and libtss2-tcti-device0)",
})
