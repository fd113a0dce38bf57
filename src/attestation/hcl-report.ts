import { createHash, type JsonWebKey } from 'node:crypto'
import { AttestationError } from './errors.js'
import { REPORT_SIZE } from './report.js'

/**
 * The HCL report an Azure confidential VM's paravisor keeps in vTPM NV index 0x01400001
 * (docs/attestation.md#hcl-report): a 32-byte header, the hardware report (1184 bytes for
 * SEV-SNP), the IGVM request data, then the variable data whose hash is in REPORT_DATA.
 */
export const HCL_HEADER_SIZE = 32
export const HCL_SIGNATURE = 0x414c4348 // "HCLA" read little-endian
const REQUEST_DATA_OFFSET = HCL_HEADER_SIZE + REPORT_SIZE
const REQUEST_DATA_SIZE = 20
export const VARIABLE_DATA_OFFSET = REQUEST_DATA_OFFSET + REQUEST_DATA_SIZE

/** IGVM report types; only SNP is a report encfs can use. */
const REPORT_TYPES: Record<number, string> = { 0: 'invalid', 1: 'VBS', 2: 'SEV-SNP', 3: 'trusted launch (no TEE)', 4: 'TDX' }
export const HCL_REPORT_TYPE_SNP = 2
/** IGVM hash types of the variable data, and the hash each names. */
const HASH_TYPES: Record<number, 'sha256' | 'sha384' | 'sha512'> = { 1: 'sha256', 2: 'sha384', 3: 'sha512' }

export interface HclHeader {
  version: number
  /** Bytes of the HCL report that are meaningful (the NV index is padded after them). */
  reportSize: number
  requestType: number
  status: number
}

export interface HclRequestData {
  dataSize: number
  version: number
  reportType: number
  hashType: number
  variableDataSize: number
}

export interface HclReport {
  header: HclHeader
  requestData: HclRequestData
  /** The raw SEV-SNP attestation report (1184 bytes). */
  snpReport: Buffer
  /** The variable data, exactly as hashed into REPORT_DATA. */
  variableData: Buffer
  /** The variable data as JSON: keys, vm-configuration, user-data. */
  runtime: Record<string, unknown>
  /** The vTPM attestation key (kid HCLAkPub), when the variable data carries it. */
  akPub?: JsonWebKey
  /** The vTPM endorsement key (kid HCLEkPub), when present (newer paravisors). */
  ekPub?: JsonWebKey
  /** The 64 bytes last written to NV index 0x01400002 (`user-data`), when present. */
  userData?: Buffer
  /** Whether REPORT_DATA starts with the hash of the variable data. */
  binding: { hash: string; expected: string; actual: string; holds: boolean }
}

function invalid(what: string, why: string): AttestationError {
  return new AttestationError('ATTEST_HCL_INVALID', `${what}: ${why}`)
}

function readHeader(raw: Buffer, what: string): HclHeader {
  if (raw.readUInt32LE(0) !== HCL_SIGNATURE) throw invalid(what, `it does not start with the signature HCLA (found ${raw.subarray(0, 4).toString('hex')}): not an HCL report`)
  return { version: raw.readUInt32LE(4), reportSize: raw.readUInt32LE(8), requestType: raw.readUInt32LE(12), status: raw.readUInt32LE(16) }
}

function readRequestData(raw: Buffer, header: HclHeader, what: string): HclRequestData {
  const at = REQUEST_DATA_OFFSET
  const r = {
    dataSize: raw.readUInt32LE(at),
    version: raw.readUInt32LE(at + 4),
    reportType: raw.readUInt32LE(at + 8),
    hashType: raw.readUInt32LE(at + 12),
    variableDataSize: raw.readUInt32LE(at + 16),
  }
  if (r.reportType !== HCL_REPORT_TYPE_SNP) {
    throw invalid(what, `report type ${r.reportType} (${REPORT_TYPES[r.reportType] ?? 'unknown'}) is not an SEV-SNP report (type 2); encfs attests SEV-SNP confidential VMs only`)
  }
  if (!HASH_TYPES[r.hashType]) throw invalid(what, `hash type ${r.hashType} is not SHA-256 (1), SHA-384 (2) or SHA-512 (3)`)
  if (r.dataSize !== REQUEST_DATA_SIZE + r.variableDataSize) {
    throw invalid(
      what,
      `the request data says ${r.dataSize} bytes, but its ${REQUEST_DATA_SIZE}-byte header and ${r.variableDataSize} bytes of variable data make ${REQUEST_DATA_SIZE + r.variableDataSize}`,
    )
  }
  const end = VARIABLE_DATA_OFFSET + r.variableDataSize
  if (end > raw.length)
    throw invalid(what, `the variable data (${r.variableDataSize} bytes at ${VARIABLE_DATA_OFFSET}) runs past the end of the ${raw.length} bytes given (truncated?)`)
  if (header.reportSize < end || header.reportSize > raw.length) {
    throw invalid(what, `the header's report size ${header.reportSize} does not cover the variable data (ending at ${end}) within the ${raw.length} bytes given`)
  }
  return r
}

function jsonOf(variableData: Buffer, what: string): Record<string, unknown> {
  let v: unknown
  try {
    v = JSON.parse(variableData.toString('utf8'))
  } catch (err) {
    throw invalid(what, `the variable data is not JSON (${(err as Error).message})`)
  }
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw invalid(what, 'the variable data is not a JSON object')
  return v as Record<string, unknown>
}

function keyOf(runtime: Record<string, unknown>, kid: string, what: string): JsonWebKey | undefined {
  const keys = runtime.keys
  if (keys === undefined) return undefined
  if (!Array.isArray(keys)) throw invalid(what, 'the variable data member "keys" is not an array of JWKs')
  const key = keys.find((k: unknown) => k && typeof k === 'object' && (k as { kid?: unknown }).kid === kid) as JsonWebKey | undefined
  if (key && (key.kty !== 'RSA' || typeof key.n !== 'string' || typeof key.e !== 'string')) throw invalid(what, `the key ${kid} is not an RSA JWK with n and e`)
  return key
}

function userDataOf(runtime: Record<string, unknown>, what: string): Buffer | undefined {
  const u = runtime['user-data']
  if (u === undefined) return undefined
  if (typeof u !== 'string' || !/^([0-9a-fA-F]{2})*$/.test(u)) throw invalid(what, 'the variable data member "user-data" is not hex')
  return Buffer.from(u, 'hex')
}

/**
 * Parses and checks an HCL report: signature, report type (SEV-SNP), hash type, sizes, the
 * variable data as JSON. The REPORT_DATA binding is computed, not enforced: see checkHclBinding.
 */
export function parseHclReport(raw: Buffer, what = 'the HCL report'): HclReport {
  if (raw.length < VARIABLE_DATA_OFFSET)
    throw invalid(what, `${raw.length} bytes is shorter than the ${VARIABLE_DATA_OFFSET} bytes of its fixed part (header, hardware report, request data)`)
  const header = readHeader(raw, what)
  const requestData = readRequestData(raw, header, what)
  const snpReport = Buffer.from(raw.subarray(HCL_HEADER_SIZE, HCL_HEADER_SIZE + REPORT_SIZE))
  const variableData = Buffer.from(raw.subarray(VARIABLE_DATA_OFFSET, VARIABLE_DATA_OFFSET + requestData.variableDataSize))
  const runtime = jsonOf(variableData, what)
  const hash = HASH_TYPES[requestData.hashType]!
  const digest = createHash(hash).update(variableData).digest()
  const actual = snpReport.subarray(0x50, 0x50 + digest.length)
  return {
    header,
    requestData,
    snpReport,
    variableData,
    runtime,
    akPub: keyOf(runtime, 'HCLAkPub', what),
    ekPub: keyOf(runtime, 'HCLEkPub', what),
    userData: userDataOf(runtime, what),
    binding: { hash, expected: digest.toString('hex'), actual: actual.toString('hex'), holds: actual.equals(digest) },
  }
}

/** Refuses a report whose REPORT_DATA does not carry the hash of its variable data (altered keys or user data). */
export function checkHclBinding(h: HclReport, what = 'the HCL report'): void {
  if (!h.binding.holds) {
    throw new AttestationError(
      'ATTEST_HCL_BINDING',
      `${what}: REPORT_DATA starts with ${h.binding.actual}, not the ${h.binding.hash} of the variable data (${h.binding.expected}): the variable data was altered or belongs to another report`,
    )
  }
}
