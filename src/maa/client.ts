import type { Logger } from '../log/logger.js'
import { request } from '../http/request.js'
import { MaaError } from './errors.js'
import { attestRequestBody, type AttestInputs } from './attest-request.js'
import { SKR_USER_AGENT } from './user-agent.js'

export interface MaaOptions {
  /** MAA host without scheme (a port is allowed for emulators). */
  endpoint: string
  teeType?: string
  apiVersion?: string
  ca?: string[]
  logger?: Logger
  signal?: AbortSignal
  attempts?: number
  baseDelayMs?: number
  /** The process's MAA User-Agent (MaaUserAgent.value); default Go skr's `ConfidentialSkrContainer`. */
  userAgent?: string
}

/** Trades a report for an MAA token (docs/attestation.md#maa). */
export function attestSevSnp(inputs: AttestInputs, o: MaaOptions): Promise<string> {
  return postForToken(`https://${o.endpoint}/attest/${o.teeType ?? 'SevSnpVM'}?${o.apiVersion ?? 'api-version=2020-10-01'}`, attestRequestBody(inputs), o)
}

/** POSTs an attest request and returns the `token` member of MAA's answer (for AzureGuest, still encrypted). */
export async function postForToken(url: string, body: string, o: MaaOptions): Promise<string> {
  const userAgent = o.userAgent || SKR_USER_AGENT
  o.logger?.debug({ userAgent }, `Adding User-Agent to MAA request: ${userAgent}`)
  const res = await request(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'user-agent': userAgent },
    body,
    what: 'MAA attestation',
    attempts: o.attempts ?? 4,
    baseDelayMs: o.baseDelayMs,
    ca: o.ca,
    logger: o.logger,
    signal: o.signal,
  })
  const text = res.body.toString('utf8')
  if (res.status < 200 || res.status > 207) {
    // A 4xx is MAA's verdict on the evidence; 408, 429 and 5xx (after the retries) say MAA is not working for us now.
    const unavailable = res.status === 408 || res.status === 429 || res.status >= 500
    throw new MaaError(unavailable ? 'MAA_UNAVAILABLE' : 'MAA_ATTEST_FAILED', `MAA attestation at ${o.endpoint} failed with HTTP ${res.status}: ${text.slice(0, 500)}`, {
      upstreamStatus: res.status,
    })
  }
  let token: unknown
  try {
    const json = JSON.parse(text) as Record<string, unknown>
    token = Object.entries(json).find(([k]) => k.toLowerCase() === 'token')?.[1]
  } catch {
    token = undefined
  }
  if (typeof token !== 'string' || token === '')
    throw new MaaError('MAA_BAD_ANSWER', `MAA at ${o.endpoint} answered HTTP ${res.status} without a token`, { upstreamStatus: res.status })
  return token
}
