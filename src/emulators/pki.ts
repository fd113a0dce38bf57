import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { EncfsError } from '../errors/encfs-error.js'
import { runCommand } from '../process/run.js'

export interface ServerPki {
  /** The local CA to trust (NODE_EXTRA_CA_CERTS, or the roots of a verifier). */
  caPem: string
  /** TLS server certificate for the hosts, signed by the CA, and its key. */
  certPem: string
  keyPem: string
}

async function openssl(args: string[], cwd: string): Promise<void> {
  await runCommand('openssl', args, { cwd }).catch((err: Error) => {
    throw new EncfsError('PKI_FAILED', `issuing the emulator certificates: ${err.message}`, { cause: err })
  })
}

/**
 * A throw-away CA and a server certificate for `hosts` (DNS names or IP addresses), with the
 * server-auth usage that Key Vault's JWS leaf carries. node:crypto cannot issue certificates,
 * hence the openssl command.
 */
export async function createServerPki(hosts: string[], caName = 'encfs emulator CA'): Promise<ServerPki> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'encfs-pki-'))
  try {
    const san = hosts.map((h) => (/^[\d.]+$/.test(h) || h.includes(':') ? `IP:${h}` : `DNS:${h}`)).join(',')
    await writeFile(
      path.join(dir, 'leaf.ext'),
      `basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=${san}\n`,
    )
    await openssl(
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-keyout',
        'ca.key',
        '-out',
        'ca.pem',
        '-subj',
        `/CN=${caName}`,
        '-days',
        '30',
        '-addext',
        'basicConstraints=critical,CA:TRUE',
        '-addext',
        'keyUsage=critical,keyCertSign,cRLSign',
      ],
      dir,
    )
    await openssl(['req', '-new', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'leaf.key', '-out', 'leaf.csr', '-subj', `/CN=${hosts[0] ?? 'localhost'}`], dir)
    await openssl(
      ['x509', '-req', '-in', 'leaf.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '30', '-sha256', '-extfile', 'leaf.ext', '-out', 'leaf.pem'],
      dir,
    )
    return {
      caPem: await readFile(path.join(dir, 'ca.pem'), 'utf8'),
      certPem: await readFile(path.join(dir, 'leaf.pem'), 'utf8'),
      keyPem: await readFile(path.join(dir, 'leaf.key'), 'utf8'),
    }
  } finally {
    // The CA key goes with the directory: nothing else can be issued under this CA.
    await rm(dir, { recursive: true, force: true })
  }
}

export interface SigningCertificate {
  /** A self-signed certificate (PEM) and its RSA key (PKCS#8 PEM). */
  certPem: string
  keyPem: string
}

/**
 * A self-signed RSA certificate for signing JWS: what MAA publishes its token keys as, and what an
 * Isolated-mode attestation instance takes as a policy-management certificate.
 */
export async function createSigningCertificate(name: string): Promise<SigningCertificate> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'encfs-signer-'))
  try {
    await openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'key.pem', '-out', 'cert.pem', '-subj', `/CN=${name}`, '-days', '30', '-sha256'], dir)
    return { certPem: await readFile(path.join(dir, 'cert.pem'), 'utf8'), keyPem: await readFile(path.join(dir, 'key.pem'), 'utf8') }
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}
