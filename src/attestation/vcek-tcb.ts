import type { X509Certificate } from 'node:crypto'
import { AttestationError } from './errors.js'

// node:crypto does not expose certificate extensions, so the few VCEK ones are read from the
// DER by hand: OID 1.3.6.1.4.1.3704.1.3.N, then an OCTET STRING holding an INTEGER.
const TCB_OID_PREFIX = Buffer.from([0x06, 0x0a, 0x2b, 0x06, 0x01, 0x04, 0x01, 0x9c, 0x78, 0x01, 0x03])

function readLength(der: Buffer, at: number): { length: number; next: number } {
  const first = der[at]!
  if (first < 0x80) return { length: first, next: at + 1 }
  const n = first & 0x7f
  let length = 0
  for (let i = 0; i < n; i++) length = length * 256 + der[at + 1 + i]!
  return { length, next: at + 1 + n }
}

/** The INTEGER value of VCEK TCB extension `component` (1 bl, 2 tee, 3 snp, 8 ucode), decoded properly. */
function tcbComponent(der: Buffer, component: number): number | undefined {
  const oid = Buffer.concat([TCB_OID_PREFIX, Buffer.from([component])])
  const at = der.indexOf(oid)
  if (at < 0) return undefined
  let p = at + oid.length
  if (der[p] === 0x01) p += 3 // critical BOOLEAN
  if (der[p] !== 0x04) return undefined
  const octets = readLength(der, p + 1)
  p = octets.next
  if (der[p] !== 0x02) return undefined
  const int = readLength(der, p + 1)
  let value = 0
  for (let i = 0; i < int.length; i++) value = value * 256 + der[int.next + i]!
  return value
}

/**
 * The TCBM a VCEK certificate was issued for (docs/attestation.md#vcek-tcb-extensions). Go's parser reads the byte after the
 * INTEGER header and so turns 0xdb into 0; this decodes the INTEGER.
 */
export function vcekTcbm(cert: X509Certificate): bigint {
  const der = cert.raw
  const parts = [1, 2, 3, 8].map((c) => tcbComponent(der, c))
  if (parts.some((v) => v === undefined || v > 255)) {
    throw new AttestationError('ATTEST_VCEK_INVALID', `the VCEK certificate (${cert.subject.replace(/\n/g, ', ')}) has no readable TCB extensions (1.3.6.1.4.1.3704.1.3.x)`)
  }
  const [bl, tee, snp, ucode] = parts as [number, number, number, number]
  const bytes = Buffer.from([bl, tee, 0, 0, 0, 0, snp, ucode])
  return bytes.readBigUInt64LE(0)
}
