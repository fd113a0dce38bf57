import { readFileSync } from 'node:fs'
import { rootCertificates } from 'node:tls'
import { HttpError } from './errors.js'

const PEM = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g

/**
 * What Node's TLS trusts by default, as PEM: its bundled roots plus the certificates of
 * NODE_EXTRA_CA_CERTS. Node reads that file once at start-up into a store it does not expose
 * (tls.getCACertificates arrives after Node 20), and an explicit `ca` option replaces the store,
 * so whoever passes `ca` must add these back.
 */
export function defaultCaPems(env: NodeJS.ProcessEnv = process.env): string[] {
  const pems = [...rootCertificates]
  if (env.NODE_EXTRA_CA_CERTS) {
    try {
      pems.push(...(readFileSync(env.NODE_EXTRA_CA_CERTS, 'utf8').match(PEM) ?? []))
    } catch (err) {
      throw new HttpError('HTTP_TRUST_STORE', `NODE_EXTRA_CA_CERTS=${env.NODE_EXTRA_CA_CERTS} cannot be read: ${(err as Error).message}`, { cause: err })
    }
  }
  return pems
}
