import { Reader, isObject, typeName } from '../encoding/go-json.js'
import { checkEndpoint } from '../config/validate.js'
import { releaseBody } from '../api/schemas.js'
import { decodeGoStdBase64 } from '../encoding/base64.js'
import { KeyProviderError } from './errors.js'
import { parseJson } from '../encoding/json.js'

/**
 * The annotation an encrypted image (or any wrapped secret) carries: which key to release from
 * which vault with which MAA, and the data wrapped with that key's public half
 * (RSA-OAEP-SHA256). See docs/keyprovider-grpc.md.
 */
export interface Annotation {
  kid: string
  wrappedData: Buffer
  wrapType?: string
  kmsEndpoint: string
  attesterEndpoint: string
}

/** skr writes this whatever the key size; it is informational on unwrap. */
export const WRAP_TYPE = 'rsa_3072'

// The key name goes into the vault's URL path: the same rule as the HTTP API's kid.
const KID = new RegExp(releaseBody.properties.kid.pattern)

/** Parses an annotation (JSON bytes) the way Go reads it; throws KEYPROVIDER_INPUT_INVALID naming each bad member. */
export function parseAnnotation(bytes: Buffer, at = 'annotation'): Annotation {
  const json = parseJson(bytes.toString('utf8'), (err) => KeyProviderError.invalid('annotation', [`${at} is not JSON (${err.message})`]))
  if (!isObject(json)) throw KeyProviderError.invalid('annotation', [`${at} must be a JSON object, got ${typeName(json)}`])
  const r = new Reader()
  const kid = r.string(json, 'kid', `${at}.kid`)
  const wrapped = r.string(json, 'wrapped_data', `${at}.wrapped_data`)
  const wrapType = r.string(json, 'wrap_type', `${at}.wrap_type`)
  const kmsEndpoint = r.string(json, 'kms_endpoint', `${at}.kms_endpoint`)
  const attesterEndpoint = r.string(json, 'attester_endpoint', `${at}.attester_endpoint`)
  r.string(json, 'iv', `${at}.iv`)
  if (!kid) r.add(`${at}.kid`, 'is required: the name of the RSA key in the vault')
  else if (!KID.test(kid)) r.add(`${at}.kid`, `must be a key name, or name/version, got "${kid}"`)
  const wrappedData = wrapped ? decodeGoStdBase64(wrapped) : undefined
  if (!wrapped) r.add(`${at}.wrapped_data`, 'is required: the standard base64 of the RSA-OAEP-SHA256 ciphertext')
  else if (!wrappedData) r.add(`${at}.wrapped_data`, 'must be standard base64')
  if (!kmsEndpoint) r.add(`${at}.kms_endpoint`, 'is required: the Key Vault or Managed HSM host holding kid')
  if (!attesterEndpoint) r.add(`${at}.attester_endpoint`, 'is required: the MAA host the vault trusts')
  checkEndpoint(r, kmsEndpoint, `${at}.kms_endpoint`)
  checkEndpoint(r, attesterEndpoint, `${at}.attester_endpoint`)
  if (r.issues.length > 0)
    throw KeyProviderError.invalid(
      'annotation',
      r.issues.map((i) => `${i.path} ${i.message}`),
    )
  return { kid: kid!, wrappedData: wrappedData!, ...(wrapType ? { wrapType } : {}), kmsEndpoint: kmsEndpoint!, attesterEndpoint: attesterEndpoint! }
}

/** A string as Go's encoding/json writes it: <, >, & and the JavaScript line separators escaped. */
function goString(s: string): string {
  return JSON.stringify(s).replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)
}

/** The annotation JSON exactly as skr writes it: member order, empty iv omitted, empty endpoints omitted. */
export function formatAnnotation(a: Annotation): Buffer {
  const members = [
    `"kid":${goString(a.kid)}`,
    `"wrapped_data":"${a.wrappedData.toString('base64')}"`,
    `"wrap_type":${goString(a.wrapType ?? WRAP_TYPE)}`,
    ...(a.kmsEndpoint ? [`"kms_endpoint":${goString(a.kmsEndpoint)}`] : []),
    ...(a.attesterEndpoint ? [`"attester_endpoint":${goString(a.attesterEndpoint)}`] : []),
  ]
  return Buffer.from(`{${members.join(',')}}`)
}
