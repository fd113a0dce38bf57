import { createHash, X509Certificate } from 'node:crypto'
import { compactVerify } from 'jose'
import { parsePolicy, PolicySyntaxError, type Policy } from './policy-language.js'
import { storedPolicy, unsecuredJws } from '../../maa/policy-jws.js'

/** AAD: policies may be unsigned, any signer is accepted. Isolated: every change is signed by a policy-management certificate. */
export type PolicyMode = 'AAD' | 'Isolated'

/** Permits every report and adds nothing: what the emulator did before it had policies, and an unset SevSnpVm policy. */
export const DEFAULT_POLICY = 'version=1.0;\nauthorizationrules\n{\n    => permit();\n};\nissuancerules\n{\n};\n'

/** A refusal as the service words it (the HTTP status and the error body's code). */
export class PolicyRefusal {
  constructor(
    readonly status: number,
    readonly code: string,
    readonly message: string,
  ) {}
}

export interface StoredPolicy {
  text: string
  parsed: Policy
  /** The JWS it was set with (for the default, an unsecured JWS of its text). */
  jws: string
  signer?: X509Certificate
}

/** `x-ms-policy-hash` of a token: SHA-256 of the base64url policy text. */
export const policyHash = (text: string) => createHash('sha256').update(Buffer.from(text).toString('base64url'), 'utf8').digest('base64url')

function decode(part: string | undefined, what: string): Record<string, unknown> | PolicyRefusal {
  if (part === '') return {}
  try {
    const v = JSON.parse(Buffer.from(part ?? '', 'base64url').toString('utf8')) as unknown
    if (v && typeof v === 'object' && !Array.isArray(v)) return v as Record<string, unknown>
  } catch {
    /* below */
  }
  return new PolicyRefusal(400, 'InvalidParameter', `the ${what} of the JWS is not base64url of a JSON object`)
}

/** Policies per attestation type, the policy-management certificates, and the checks of every change. */
export class MaaPolicyStore {
  private readonly policies = new Map<string, StoredPolicy>()
  readonly signers: X509Certificate[]

  constructor(
    readonly mode: PolicyMode,
    signers: X509Certificate[] = [],
  ) {
    if (mode === 'Isolated' && signers.length === 0) throw new Error('an Isolated-mode MAA needs at least one policy-management certificate')
    this.signers = [...signers]
  }

  policy(type: string): StoredPolicy {
    const stored = this.policies.get(type.toLowerCase())
    return stored ?? { text: DEFAULT_POLICY, parsed: parsePolicy(DEFAULT_POLICY), jws: unsecuredJws(storedPolicy(DEFAULT_POLICY)) }
  }

  /** The JWS's payload once its signature and signer are acceptable for this instance's mode. */
  async verifiedJws(jws: string, o: { needSigner?: boolean } = {}): Promise<{ payload: Record<string, unknown>; signer?: X509Certificate } | PolicyRefusal> {
    const parts = jws.trim().split('.')
    if (parts.length !== 3) return new PolicyRefusal(400, 'InvalidParameter', 'the body is not a compact JWS')
    const header = decode(parts[0], 'header')
    const payload = decode(parts[1], 'payload')
    if (header instanceof PolicyRefusal) return header
    if (payload instanceof PolicyRefusal) return payload
    if (header.alg === 'none') {
      if (this.mode === 'Isolated' || o.needSigner)
        return new PolicyRefusal(401, 'Unauthorized', 'this instance takes only policies signed by one of its policy-management certificates (Isolated mode)')
      return parts[2] === '' ? { payload } : new PolicyRefusal(400, 'InvalidParameter', 'an unsecured JWS (alg none) has an empty signature')
    }
    if (header.alg !== 'RS256') return new PolicyRefusal(400, 'InvalidParameter', `JWS algorithm ${String(header.alg)} is not supported (none or RS256)`)
    let signer: X509Certificate
    try {
      signer = new X509Certificate(Buffer.from(String((header.x5c as unknown[] | undefined)?.[0] ?? ''), 'base64'))
      await compactVerify(jws.trim(), signer.publicKey, { algorithms: ['RS256'] })
    } catch (err) {
      return new PolicyRefusal(400, 'InvalidParameter', `the JWS signature does not verify with its x5c certificate: ${(err as Error).message}`)
    }
    if ((this.mode === 'Isolated' || o.needSigner) && !this.signers.some((c) => c.raw.equals(signer.raw)))
      return new PolicyRefusal(401, 'Unauthorized', `the JWS is signed by ${signer.subject.replace(/\n/g, ', ')}, which is not a policy-management certificate of this instance`)
    return { payload, signer }
  }

  async setPolicy(type: string, jws: string): Promise<StoredPolicy | PolicyRefusal> {
    const verified = await this.verifiedJws(jws)
    if (verified instanceof PolicyRefusal) return verified
    const encoded = verified.payload.AttestationPolicy
    if (typeof encoded !== 'string') return new PolicyRefusal(400, 'InvalidParameter', 'the JWS payload has no AttestationPolicy (base64url of the policy text)')
    const text = Buffer.from(encoded, 'base64url').toString('utf8')
    try {
      const stored = { text, parsed: parsePolicy(text), jws: jws.trim(), signer: verified.signer }
      this.policies.set(type.toLowerCase(), stored)
      return stored
    } catch (err) {
      if (err instanceof PolicySyntaxError) return new PolicyRefusal(400, 'PolicyParsingError', `the attestation policy does not parse: ${err.message}`)
      throw err
    }
  }

  async resetPolicy(type: string, jws: string): Promise<{ signer?: X509Certificate } | PolicyRefusal> {
    const verified = await this.verifiedJws(jws)
    if (verified instanceof PolicyRefusal) return verified
    this.policies.delete(type.toLowerCase())
    return { signer: verified.signer }
  }

  /** certificates:add and :remove: signed by a current signer, the certificate in policyCertificate.x5c[0]. */
  async changeSigners(jws: string, change: 'add' | 'remove'): Promise<{ certificate: X509Certificate; present: boolean } | PolicyRefusal> {
    if (this.mode !== 'Isolated') return new PolicyRefusal(400, 'InvalidOperation', 'policy-management certificates exist only on an Isolated-mode instance')
    const verified = await this.verifiedJws(jws, { needSigner: true })
    if (verified instanceof PolicyRefusal) return verified
    const jwk = verified.payload.policyCertificate as { x5c?: unknown[] } | undefined
    let certificate: X509Certificate
    try {
      certificate = new X509Certificate(Buffer.from(String(jwk?.x5c?.[0] ?? ''), 'base64'))
    } catch {
      return new PolicyRefusal(400, 'InvalidParameter', 'policyCertificate.x5c[0] is not a base64 DER certificate')
    }
    const at = this.signers.findIndex((c) => c.raw.equals(certificate.raw))
    if (change === 'add' && at < 0) this.signers.push(certificate)
    if (change === 'remove' && at >= 0) {
      if (this.signers.length === 1) return new PolicyRefusal(400, 'InvalidOperation', 'the last policy-management certificate cannot be removed')
      this.signers.splice(at, 1)
    }
    return { certificate, present: change === 'add' }
  }
}
