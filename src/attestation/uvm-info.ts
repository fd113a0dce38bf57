import { readdir, readFile } from 'node:fs/promises'
import path from 'node:path'
import { silentLogger, type Logger } from '../log/logger.js'
import { parseHostAmdCertificate, type ThimCerts } from './thim.js'

/** Where Confidential AKS (Kata) puts the security context when no /security-context-* exists. */
export const KATA_SECURITY_CONTEXT_DIR = '/opt/confidential-containers/share/kata-containers'

export interface UvmInformation {
  /** Standard base64 of the Rego security policy (the pod's init-time data). */
  securityPolicy: string
  /** Standard base64 of the COSE_Sign1 UVM reference info (MAA endorsements). */
  referenceInfo: string
  /** Parsed THIM JSON, when the platform gave one. */
  hostAmdCertificate?: ThimCerts
  source: 'security-context directory' | 'environment'
  directory?: string
}

/** $UVM_SECURITY_CONTEXT_DIR, else the first entry of `root` named like security-context-*, else Kata's. */
export async function securityContextDir(env: NodeJS.ProcessEnv = process.env, root = '/'): Promise<string> {
  if (env.UVM_SECURITY_CONTEXT_DIR) return env.UVM_SECURITY_CONTEXT_DIR
  const entries = (await readdir(root).catch(() => [] as string[])).sort()
  const found = entries.find((e) => e.includes('security-context-'))
  return found ? path.join(root, found) : KATA_SECURITY_CONTEXT_DIR
}

/**
 * Reads the security policy, UVM reference info and host AMD certificate the way the Go sidecar
 * does: from the security-context directory, or, when that gives no reference info, from
 * UVM_SECURITY_POLICY / UVM_REFERENCE_INFO / UVM_HOST_AMD_CERTIFICATE. Problems are logged, not
 * thrown: callers decide what they cannot do without.
 */
export async function readUvmInformation(o: { env?: NodeJS.ProcessEnv; root?: string; logger?: Logger } = {}): Promise<UvmInformation> {
  const env = o.env ?? process.env
  const logger = o.logger ?? silentLogger
  const dir = await securityContextDir(env, o.root)
  const files: Partial<Record<'referenceInfo' | 'hostCert' | 'securityPolicy', string>> = {}
  try {
    files.referenceInfo = (await readFile(path.join(dir, 'reference-info-base64'), 'utf8')).trim()
    files.hostCert = (await readFile(path.join(dir, 'host-amd-cert-base64'), 'utf8')).trim()
    files.securityPolicy = (await readFile(path.join(dir, 'security-policy-base64'), 'utf8')).trim()
  } catch (err) {
    logger.debug({ dir, err: (err as Error).message }, 'security-context directory incomplete')
  }
  const fromDir = Boolean(files.referenceInfo)
  const pick = fromDir
    ? { referenceInfo: files.referenceInfo ?? '', hostCert: files.hostCert ?? '', securityPolicy: files.securityPolicy ?? '' }
    : { referenceInfo: env.UVM_REFERENCE_INFO ?? '', hostCert: env.UVM_HOST_AMD_CERTIFICATE ?? '', securityPolicy: env.UVM_SECURITY_POLICY ?? '' }
  let hostAmdCertificate: ThimCerts | undefined
  if (pick.hostCert) {
    try {
      hostAmdCertificate = parseHostAmdCertificate(pick.hostCert, fromDir ? `${dir}/host-amd-cert-base64` : 'UVM_HOST_AMD_CERTIFICATE')
    } catch (err) {
      logger.warn({ err }, 'the host AMD certificate cannot be used; certificates will be fetched')
    }
  }
  const info: UvmInformation = {
    securityPolicy: pick.securityPolicy,
    referenceInfo: pick.referenceInfo,
    ...(hostAmdCertificate ? { hostAmdCertificate } : {}),
    source: fromDir ? 'security-context directory' : 'environment',
    ...(fromDir ? { directory: dir } : {}),
  }
  logger.info(
    {
      source: info.source,
      directory: info.directory,
      policy: Boolean(info.securityPolicy),
      referenceInfo: Boolean(info.referenceInfo),
      hostAmdCertificate: Boolean(hostAmdCertificate),
    },
    'UVM information',
  )
  return info
}
