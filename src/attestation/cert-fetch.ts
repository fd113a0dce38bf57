import { X509Certificate } from 'node:crypto'
import type { Logger } from '../log/logger.js'
import { request, type Response } from '../http/request.js'
import { AttestationError } from './errors.js'
import { parseThimJson, parseTcbm, thimChainPem } from './thim.js'
import { parsePemChain } from './cert-chain.js'
import { vcekTcbm } from './vcek-tcb.js'
import type { SnpReport } from './report.js'

/** `azure_info.certcache` of the configuration: where the VCEK chain comes from (docs/attestation.md#certificate-sources). */
export interface CertCache {
  endpoint_type?: 'AMD' | 'AzCache' | 'LocalTHIM'
  endpoint?: string
  tee_type?: string
  api_version?: string
  client_id?: string
}

export const CERTCACHE_TYPES = ['AMD', 'AzCache', 'LocalTHIM'] as const

export const DEFAULT_LOCAL_THIM = '169.254.169.254/metadata/THIM/amd/certification'

export interface FetchOptions {
  logger?: Logger
  /** Attempts in all (Go: 3). */
  attempts?: number
  /** Pause before retry n (1-based); Go waits a random time below 10^n seconds. */
  retryDelayMs?: (retry: number) => number
  /** Per request; the Go code has none, a hung endpoint then hangs start-up. */
  timeoutMs?: number
  /** `https` for AMD KDS and AzCache; tests point it at a plain local server. */
  scheme?: 'https' | 'http'
  signal?: AbortSignal
}

const goDelay = (retry: number) => Math.floor(Math.random() * 10 ** retry) * 1000

/** GET with Go's retry rule (408, 429, 5xx and transport errors retried; other statuses fail at once). */
export async function fetchWithRetry(url: string, o: FetchOptions & { headers?: Record<string, string>; what: string }): Promise<Buffer> {
  const attempts = o.attempts ?? 3
  let res: Response
  try {
    res = await request(url, {
      headers: o.headers,
      what: o.what,
      attempts,
      retryDelayMs: o.retryDelayMs ?? goDelay,
      timeoutMs: o.timeoutMs ?? 30_000,
      logger: o.logger,
      signal: o.signal,
    })
  } catch (err) {
    throw new AttestationError(
      'ATTEST_CERT_FETCH',
      `${o.what}: GET ${url} failed ${attempts} times (last: ${((err as Error).cause as Error | undefined)?.message ?? (err as Error).message})`,
      { cause: err },
    )
  }
  if (res.status >= 200 && res.status < 300) return res.body
  const last = `HTTP ${res.status}: ${res.body.toString('utf8', 0, 200).trim()}`
  const retried = res.status === 408 || res.status === 429 || res.status >= 500
  throw new AttestationError('ATTEST_CERT_FETCH', retried ? `${o.what}: GET ${url} failed ${attempts} times (last: ${last})` : `${o.what}: GET ${url} failed with ${last}`)
}

export interface FetchedChain {
  /** VCEK, ASK, ARK as PEM. */
  chainPem: string
  tcbm: bigint
}

function pemOf(der: Buffer): string {
  return `-----BEGIN CERTIFICATE-----\n${der
    .toString('base64')
    .replace(/(.{64})/g, '$1\n')
    .replace(/\n$/, '')}\n-----END CERTIFICATE-----\n`
}

/** The local THIM endpoint's JSON: chain and TCBM of this host (`http://` + endpoint, `Metadata: true`). */
export async function fetchLocalThim(endpoint: string | undefined, o: FetchOptions = {}): Promise<FetchedChain> {
  const url = `http://${endpoint || DEFAULT_LOCAL_THIM}`
  const body = await fetchWithRetry(url, { ...o, headers: { Metadata: 'true' }, what: 'local THIM certificates' })
  const thim = parseThimJson(body.toString('utf8'), `the THIM answer of ${url}`)
  if (!thim.vcekCert || !thim.certificateChain) throw new AttestationError('ATTEST_CERT_FETCH', `${url} answered without vcekCert / certificateChain`)
  return { chainPem: thimChainPem(thim), tcbm: parseTcbm(thim.tcbm, url) }
}

/** The VCEK chain for a report from the configured `certcache` (docs/attestation.md#certificate-sources). */
export async function fetchCertChain(cc: CertCache, report: SnpReport, o: FetchOptions = {}): Promise<FetchedChain> {
  const scheme = o.scheme ?? 'https'
  if (!cc.endpoint) throw new AttestationError('ATTEST_CERT_FETCH', 'failed to retrieve cert chain: certificate endpoint not set (azure_info.certcache.endpoint)')
  const tcb = report.reportedTcb
  switch (cc.endpoint_type) {
    case 'AMD': {
      const base = `${scheme}://${cc.endpoint}/${cc.tee_type ?? 'Milan'}`
      const vcek = await fetchWithRetry(`${base}/${report.chipId}?ucodeSPL=${tcb.microcode}&snpSPL=${tcb.snp}&teeSPL=${tcb.tee}&blSPL=${tcb.bootloader}`, {
        ...o,
        what: 'AMD KDS VCEK',
      })
      const chain = await fetchWithRetry(`${base}/cert_chain`, { ...o, what: 'AMD KDS certificate chain' })
      let vcekPem: string
      try {
        vcekPem = pemOf(new X509Certificate(vcek).raw)
      } catch (err) {
        throw new AttestationError('ATTEST_CERT_FETCH', `AMD KDS answered a VCEK that is not a certificate: ${(err as Error).message}`, { cause: err })
      }
      return { chainPem: vcekPem + chain.toString('utf8'), tcbm: tcb.value }
    }
    case 'AzCache': {
      const query = [cc.api_version, cc.client_id].filter(Boolean).join('&')
      if (!cc.client_id) o.logger?.warn('azure_info.certcache.client_id is empty; AzCache may refuse the request')
      const url = `${scheme}://${cc.endpoint}/${cc.tee_type ?? 'SevSnpVM'}/certificates/${report.chipId}/${tcb.value.toString(16)}${query ? `?${query}` : ''}`
      const body = (await fetchWithRetry(url, { ...o, what: 'AzCache certificates' })).toString('utf8')
      const certs = parsePemChain(body, `the AzCache answer of ${url}`)
      const vcek = certs.find((c) => /CN=SEV-VCEK/.test(c.subject))
      if (!vcek) throw new AttestationError('ATTEST_CERT_FETCH', `the AzCache answer of ${url} has no SEV-VCEK certificate`)
      return { chainPem: body, tcbm: vcekTcbm(vcek) }
    }
    case 'LocalTHIM':
      return fetchLocalThim(cc.endpoint, o)
    default:
      throw new AttestationError('ATTEST_CERT_FETCH', `invalid endpoint type: ${String(cc.endpoint_type)} (azure_info.certcache.endpoint_type must be AMD, AzCache or LocalTHIM)`)
  }
}
