import { X509Certificate } from 'node:crypto'
import { isIP } from 'node:net'
import { SkrError } from './errors.js'
import { defaultCaPems } from '../http/trust-store.js'

const SERVER_AUTH = '1.3.6.1.5.5.7.3.1'

/** What Node's TLS trusts: its bundled roots plus the certificates in NODE_EXTRA_CA_CERTS. */
export function defaultTrustedRoots(env: NodeJS.ProcessEnv = process.env): X509Certificate[] {
  try {
    return defaultCaPems(env).map((p) => new X509Certificate(p))
  } catch (err) {
    throw new SkrError('SKR_TRUST_STORE', (err as Error).message, { cause: err })
  }
}

function valid(cert: X509Certificate, at: Date): boolean {
  return at >= new Date(cert.validFrom) && at <= new Date(cert.validTo)
}

const name = (c: X509Certificate) => /CN=([^\n,]+)/.exec(c.subject)?.[1] ?? c.subject

/**
 * Path validation for a JWS x5c chain (node:crypto checks signatures but builds no paths): leaf
 * for `host`, with server-auth usage, through the given intermediates to a trusted root, every
 * certificate valid at `at`.
 */
export function verifyServerChain(chain: X509Certificate[], o: { host: string; roots: X509Certificate[]; at?: Date }): void {
  const at = o.at ?? new Date()
  const leaf = chain[0]
  if (!leaf) throw new SkrError('SKR_CHAIN_INVALID', 'the x5c chain is empty')
  // The vault endpoint may carry a port (emulators); the certificate names the host alone.
  const host = isIP(o.host) ? o.host : o.host.replace(/:\d+$/, '').replace(/^\[(.*)\]$/, '$1')
  if (!(isIP(host) ? leaf.checkIP(host) : leaf.checkHost(host))) throw new SkrError('SKR_HOST_MISMATCH', `the signing certificate (${name(leaf)}) is not valid for ${host}`)
  if (leaf.keyUsage && leaf.keyUsage.length > 0 && !leaf.keyUsage.includes(SERVER_AUTH)) {
    throw new SkrError('SKR_CHAIN_INVALID', `the signing certificate (${name(leaf)}) is not a TLS server certificate`)
  }
  let current = leaf
  const pool = chain.slice(1)
  for (let depth = 0; depth < 10; depth++) {
    if (!valid(current, at))
      throw new SkrError('SKR_CHAIN_EXPIRED', `certificate ${name(current)} is not valid at ${at.toISOString()} (valid ${current.validFrom} to ${current.validTo})`)
    const root = o.roots.find((r) => current.checkIssued(r) && current.verify(r.publicKey))
    if (root) {
      if (!valid(root, at)) throw new SkrError('SKR_CHAIN_EXPIRED', `root ${name(root)} is not valid at ${at.toISOString()}`)
      return
    }
    if (o.roots.some((r) => r.raw.equals(current.raw))) return
    const issuer = pool.find((c) => current.checkIssued(c) && current.verify(c.publicKey))
    if (!issuer)
      throw new SkrError(
        'SKR_CHAIN_UNTRUSTED',
        `the chain of ${name(leaf)} does not lead to a trusted root (stuck at ${name(current)}, issued by ${current.issuer.replace(/\n/g, ', ')}); trust the vault's CA with NODE_EXTRA_CA_CERTS`,
      )
    current = issuer
  }
  throw new SkrError('SKR_CHAIN_INVALID', 'the x5c chain is longer than 10 certificates')
}
