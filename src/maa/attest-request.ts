/** Go's base64.URLEncoding: url alphabet, with padding (not JOSE's unpadded form). */
export function urlBase64(b: Buffer): string {
  return b.toString('base64').replace(/\+/g, '-').replace(/\//g, '_')
}

export interface AttestInputs {
  /** The raw 1184-byte report. */
  report: Buffer
  /** VCEK, ASK, ARK as PEM text. */
  vcekCertChain: string
  /** The UVM reference info (COSE_Sign1) as the platform gives it: standard base64. Empty: no endorsements. */
  referenceInfo?: string
  /** The runtime data whose SHA-256 is in REPORT_DATA; must be JSON. */
  runtimeData: Buffer
  nonce: bigint
}

/**
 * The body of `POST /attest/SevSnpVM` byte for byte as the Go sidecar sends it (docs/attestation.md#maa-request), so
 * that MAA sees the same request from either: member order, padded url base64, an empty
 * initTimeData and the nonce as an unsigned 64-bit JSON number.
 */
export function attestRequestBody(i: AttestInputs): string {
  const endorsements = i.referenceInfo ? `,"Endorsements":"${urlBase64(Buffer.from(JSON.stringify({ Uvm: [urlBase64(Buffer.from(i.referenceInfo, 'base64'))] })))}"` : ''
  const bundle = `{"SnpReport":"${urlBase64(i.report)}","VcekCertChain":"${urlBase64(Buffer.from(i.vcekCertChain))}"${endorsements}}`
  return `{"report":"${urlBase64(Buffer.from(bundle))}","runtimeData":{"data":"${urlBase64(i.runtimeData)}","dataType":"JSON"},"initTimeData":{"data":"","dataType":""},"nonce":${BigInt.asUintN(64, i.nonce).toString()}}`
}
