import { X509Certificate } from 'node:crypto'
import { AttestationError } from './errors.js'

/** Splits concatenated PEM certificates (a THIM `vcekCert + certificateChain`, an AzCache body). */
export function parsePemChain(pem: string, what = 'certificate chain'): X509Certificate[] {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []
  if (blocks.length === 0) throw new AttestationError('ATTEST_CHAIN_INVALID', `${what}: no PEM certificate found`)
  return blocks.map((b, i) => {
    try {
      return new X509Certificate(b)
    } catch (err) {
      throw new AttestationError('ATTEST_CHAIN_INVALID', `${what}: certificate ${i + 1} does not parse: ${(err as Error).message}`, { cause: err })
    }
  })
}

export interface AmdChain {
  vcek: X509Certificate
  ask: X509Certificate
  ark: X509Certificate
}

function cn(cert: X509Certificate): string {
  return /CN=([^\n,]+)/.exec(cert.subject)?.[1] ?? cert.subject
}

function within(cert: X509Certificate, at: Date, name: string): void {
  if (at < new Date(cert.validFrom) || at > new Date(cert.validTo)) {
    throw new AttestationError('ATTEST_CHAIN_EXPIRED', `${name} certificate (${cn(cert)}) is not valid at ${at.toISOString()} (valid ${cert.validFrom} to ${cert.validTo})`)
  }
}

/**
 * Checks VCEK <- ASK <- ARK: each signed by the next, the ARK self-signed and, when
 * `trustedArks` is given, identical to one of them (otherwise anyone can mint a chain).
 */
export function verifyAmdChain(certs: X509Certificate[], o: { trustedArks?: X509Certificate[]; at?: Date } = {}): AmdChain {
  if (certs.length < 3) throw new AttestationError('ATTEST_CHAIN_INVALID', `the certificate chain has ${certs.length} certificate(s); VCEK, ASK and ARK are needed`)
  const [vcek, ask, ark] = certs as [X509Certificate, X509Certificate, X509Certificate]
  const at = o.at ?? new Date()
  within(vcek, at, 'VCEK')
  within(ask, at, 'ASK')
  within(ark, at, 'ARK')
  if (!ark.verify(ark.publicKey)) throw new AttestationError('ATTEST_CHAIN_INVALID', `the ARK (${cn(ark)}) is not self-signed`)
  if (!ask.verify(ark.publicKey)) throw new AttestationError('ATTEST_CHAIN_INVALID', `the ASK (${cn(ask)}) is not signed by the ARK (${cn(ark)})`)
  if (!vcek.verify(ask.publicKey)) throw new AttestationError('ATTEST_CHAIN_INVALID', `the VCEK (${cn(vcek)}) is not signed by the ASK (${cn(ask)})`)
  if (o.trustedArks && !o.trustedArks.some((t) => t.raw.equals(ark.raw))) {
    throw new AttestationError('ATTEST_CHAIN_UNTRUSTED', `the chain ends at an ARK (${cn(ark)}, SHA-256 ${ark.fingerprint256}) that is not among the trusted roots`)
  }
  return { vcek, ask, ark }
}
