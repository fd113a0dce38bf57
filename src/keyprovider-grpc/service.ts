import { createPrivateKey } from 'node:crypto'
import type { Logger } from '../log/logger.js'
import type { AttestationContext } from '../attestation/context.js'
import type { IdentityConfig } from '../identity/credential.js'
import { maaReportData } from '../attestation/report-data.js'
import { combinedEvidence, type CombinedEvidence } from '../attestation/combined.js'
import { decodeGoStdBase64 } from '../encoding/base64.js'
import { releaseKey } from '../skr/release.js'
import type { VaultHost } from '../skr/vault-hosts.js'
import { parseProtocolInput, unwrapRequest, wrapRequest, unwrapOutput, wrapOutput } from './protocol.js'
import { parseAnnotation } from './annotation.js'
import { unwrapWithPrivateKey, wrapWithKeyInfo } from './wrap.js'
import { KeyProviderError, StepError } from './errors.js'
import type { MaaUserAgent } from '../maa/user-agent.js'

export interface KeyProviderOptions {
  attestation: AttestationContext
  identity?: IdentityConfig
  logger: Logger
  /** Extra CAs for MAA and the vault (the emulators'); production relies on NODE_EXTRA_CA_CERTS. */
  ca?: string[]
  /** The process's MAA User-Agent. */
  maaUserAgent?: MaaUserAgent
  /** The attestation agent name requests must carry: `skr` (the default), or `aasp` in the AASP role. */
  agentName?: string
  /** The operator's vault hosts (default: env EncfsVaultHosts); an annotation's kms_endpoint must be one, or a cloud vault. */
  vaultHosts?: readonly VaultHost[]
}

/**
 * The keyprovider methods on bytes and strings, independent of gRPC (server.ts maps both proto
 * packages onto these). Failures are KeyProviderError (bad input) or StepError (a named step
 * failed with the service's reason); status.ts turns them into gRPC statuses.
 */
export class KeyProviderService {
  constructor(private readonly o: KeyProviderOptions) {}

  private async setup(step: string) {
    return StepError.wrap(step, () => this.o.attestation.ready())
  }

  sayHello(name: string): string {
    return `Hello ${name}`
  }

  /** keyunwrap: release the annotation's RSA key with attestation, decrypt the wrapped data. */
  async unwrapKey(input: Buffer, o: { logger?: Logger; signal?: AbortSignal } = {}): Promise<Buffer> {
    const logger = o.logger ?? this.o.logger
    const annotation = parseAnnotation(unwrapRequest(parseProtocolInput(input), this.o.agentName), 'keyunwrapparams.annotation')
    logger.info({ kid: annotation.kid, akv: annotation.kmsEndpoint, maa: annotation.attesterEndpoint, wrapType: annotation.wrapType }, 'UnWrapKey: releasing the wrapping key')
    const { provider, collateral, uvm } = await this.setup('secure key release')
    const released = await StepError.wrap('secure key release', () =>
      releaseKey({
        maaEndpoint: annotation.attesterEndpoint,
        akvEndpoint: annotation.kmsEndpoint,
        akvField: 'keyunwrapparams.annotation.kms_endpoint',
        vaultHosts: this.o.vaultHosts,
        kid: annotation.kid,
        identity: this.o.identity,
        provider,
        collateral,
        uvm,
        ca: this.o.ca,
        maaUserAgent: this.o.maaUserAgent?.value,
        logger,
        signal: o.signal,
      }),
    )
    try {
      if (released.kty !== 'RSA') {
        throw new KeyProviderError(
          'KEYPROVIDER_KEY_NOT_RSA',
          `the released key ${annotation.kid} is ${released.kty}; UnWrapKey needs the RSA key whose public half wrapped the data`,
        )
      }
      const plaintext = unwrapWithPrivateKey(annotation.wrappedData, createPrivateKey({ key: released.material, format: 'der', type: 'pkcs8' }), annotation.kid)
      try {
        return unwrapOutput(plaintext)
      } finally {
        plaintext.fill(0)
      }
    } finally {
      released.material.fill(0)
    }
  }

  /** keywrap: wrap optsdata with the public key named by `skr:<key path>` (its -info.json on this machine). */
  async wrapKey(input: Buffer, o: { logger?: Logger } = {}): Promise<Buffer> {
    const { keyPath, optsdata } = wrapRequest(parseProtocolInput(input), this.o.agentName)
    try {
      const { annotation, fields } = await wrapWithKeyInfo(optsdata, keyPath)
      ;(o.logger ?? this.o.logger).info({ kid: fields.kid, akv: fields.kmsEndpoint, maa: fields.attesterEndpoint }, 'WrapKey: data wrapped')
      return wrapOutput(annotation)
    } finally {
      optsdata.fill(0)
    }
  }

  /** An SNP report whose REPORT_DATA is SHA-256 of the string's UTF-8 bytes (not of its hex value), as skr. */
  async getReport(reportDataHexString: string, o: { signal?: AbortSignal } = {}): Promise<string> {
    const { provider } = await this.setup('getting an SNP report')
    const report = await StepError.wrap('getting an SNP report', () => provider.getReport(maaReportData(Buffer.from(reportDataHexString, 'utf8')), o.signal))
    return report.toString('hex')
  }

  /** What /attest/combined answers, for runtime data given as standard base64. */
  async getAttestationData(b64RuntimeData: string, o: { signal?: AbortSignal } = {}): Promise<CombinedEvidence> {
    const runtime = decodeGoStdBase64(b64RuntimeData)
    if (!runtime) throw KeyProviderError.invalid('request', ['b64_runtime_data_string must be standard base64'])
    const setup = await this.setup('getting the attestation evidence')
    return StepError.wrap('getting the attestation evidence', () => combinedEvidence(setup, runtime, { signal: o.signal }))
  }
}
