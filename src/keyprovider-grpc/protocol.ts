import { Reader, isObject, typeName, type JsonObject } from '../encoding/go-json.js'
import { decodeGoStdBase64 } from '../encoding/base64.js'
import { KeyProviderError } from './errors.js'
import { parseJson } from '../encoding/json.js'

// The ocicrypt keyprovider protocol JSON carried in field 1 of the gRPC messages (see
// docs/keyprovider-grpc.md). Parsed the way Go's encoding/json reads it: member names match
// case-insensitively, unknown members and null values are ignored, []byte members are standard
// base64. Map keys (the provider names under "Parameters") match exactly, as Go map keys do.

/** The parameter under which ocicrypt passes this provider's arguments (the provider's name in its config). */
export const AGENT_PARAMETER = 'attestation-agent'
/** The attestation agent name skr answers to; WrapKey takes `skr:<key path>`. */
export const AGENT_NAME = 'skr'
/** The name Go's AASP sidecar answered to (its unwrap.sh sends `aasp`), and the AASP role's. */
export const AASP_AGENT_NAME = 'aasp'

export interface ProtocolInput {
  op?: string
  keyWrap: { parameters: Record<string, string[]>; optsdata?: Buffer }
  keyUnwrap: { parameters: Record<string, string[]>; annotation?: Buffer }
}

function bytesMember(r: Reader, obj: JsonObject, name: string, path: string): Buffer | undefined {
  const text = r.string(obj, name, path)
  if (text === undefined) return undefined
  const bytes = decodeGoStdBase64(text)
  if (!bytes) r.add(path, 'must be standard base64')
  return bytes
}

/** `Parameters` of an ocicrypt EncryptConfig / DecryptConfig: provider name -> base64 strings. */
function parametersMember(r: Reader, config: JsonObject | undefined, path: string): Record<string, string[]> {
  const out: Record<string, string[]> = {}
  if (!config) return out
  const params = r.object(config, 'Parameters', `${path}.Parameters`)
  for (const [key, value] of Object.entries(params ?? {})) {
    if (value === null) continue
    if (!Array.isArray(value) || value.some((v) => typeof v !== 'string')) {
      r.add(`${path}.Parameters["${key}"]`, `must be an array of base64 strings, got ${typeName(value)}`)
      continue
    }
    out[key] = value as string[]
  }
  return out
}

/** Parses the protocol JSON; throws KEYPROVIDER_INPUT_INVALID naming every bad member. */
export function parseProtocolInput(bytes: Buffer): ProtocolInput {
  const json = parseJson(bytes.toString('utf8'), (err) =>
    KeyProviderError.invalid('keyprovider input', [
      `it is not JSON (${err.message}); field 1 must carry the keyprovider protocol JSON {"op":…,"keywrapparams":…,"keyunwrapparams":…}`,
    ]),
  )
  if (!isObject(json)) throw KeyProviderError.invalid('keyprovider input', [`it must be a JSON object, got ${typeName(json)}`])
  const r = new Reader()
  const op = r.string(json, 'op', 'op')
  const wrap = r.object(json, 'keywrapparams', 'keywrapparams')
  const unwrap = r.object(json, 'keyunwrapparams', 'keyunwrapparams')
  const input: ProtocolInput = {
    op,
    keyWrap: {
      parameters: parametersMember(r, wrap && r.object(wrap, 'ec', 'keywrapparams.ec'), 'keywrapparams.ec'),
      optsdata: wrap && bytesMember(r, wrap, 'optsdata', 'keywrapparams.optsdata'),
    },
    keyUnwrap: {
      parameters: parametersMember(r, unwrap && r.object(unwrap, 'dc', 'keyunwrapparams.dc'), 'keyunwrapparams.dc'),
      annotation: unwrap && bytesMember(r, unwrap, 'annotation', 'keyunwrapparams.annotation'),
    },
  }
  if (r.issues.length > 0)
    throw KeyProviderError.invalid(
      'keyprovider input',
      r.issues.map((i) => `${i.path} ${i.message}`),
    )
  return input
}

function checkOp(input: ProtocolInput, expected: 'keywrap' | 'keyunwrap', method: string): void {
  // Go does not look at op; a request meant for the other operation is refused here rather
  // than answered with an empty result.
  if (input.op && input.op !== expected) {
    throw KeyProviderError.invalid('keyprovider input', [`op is "${input.op}"; ${method} takes "${expected}"`])
  }
}

/** The decoded first value of Parameters["attestation-agent"]. */
function agentParameter(parameters: Record<string, string[]>, path: string, expect: string): string {
  const at = `${path}.Parameters["${AGENT_PARAMETER}"]`
  const first = parameters[AGENT_PARAMETER]?.[0]
  if (first === undefined) throw KeyProviderError.invalid('keyprovider input', [`${at} is missing: it must hold the standard base64 of "${expect}"`])
  const decoded = decodeGoStdBase64(first)
  if (!decoded) throw KeyProviderError.invalid('keyprovider input', [`${at}[0] is not standard base64 (it must encode "${expect}")`])
  return decoded.toString('utf8')
}

function wrongAgent(at: string, agent: string, name: string): KeyProviderError {
  return KeyProviderError.invalid('keyprovider input', [
    `${at} names the attestation agent "${agent}", but this key provider is "${name}": was the request meant for another key provider?`,
  ])
}

/** UnWrapKey's request: the agent must be `name` (any letter case, as Go compares); returns the annotation bytes. */
export function unwrapRequest(input: ProtocolInput, name = AGENT_NAME): Buffer {
  checkOp(input, 'keyunwrap', 'UnWrapKey')
  const agent = agentParameter(input.keyUnwrap.parameters, 'keyunwrapparams.dc', name)
  if (agent.toLowerCase() !== name) throw wrongAgent(`keyunwrapparams.dc.Parameters["${AGENT_PARAMETER}"][0]`, agent, name)
  const annotation = input.keyUnwrap.annotation
  if (!annotation || annotation.length === 0) {
    throw KeyProviderError.invalid('keyprovider input', [
      'keyunwrapparams.annotation is missing: it must be the standard base64 of the annotation JSON {"kid":…,"wrapped_data":…,"kms_endpoint":…,"attester_endpoint":…}',
    ])
  }
  return annotation
}

/** WrapKey's request: the agent parameter `<name>:<key path>`; returns the key path and the data to wrap. */
export function wrapRequest(input: ProtocolInput, name = AGENT_NAME): { keyPath: string; optsdata: Buffer } {
  checkOp(input, 'keywrap', 'WrapKey')
  const at = `keywrapparams.ec.Parameters["${AGENT_PARAMETER}"][0]`
  const value = agentParameter(input.keyWrap.parameters, 'keywrapparams.ec', `${name}:<key path>`)
  const colon = value.indexOf(':')
  if (colon < 0 || colon === value.length - 1)
    throw KeyProviderError.invalid('keyprovider input', [`${at} is "${value}": it must be "${name}:<key path>", the path of the wrapping key without -info.json`])
  const agent = value.slice(0, colon)
  if (agent.toLowerCase() !== name) throw wrongAgent(at, agent, name)
  return { keyPath: value.slice(colon + 1), optsdata: input.keyWrap.optsdata ?? Buffer.alloc(0) }
}

/** Go marshals a nil []byte as null and any other as standard base64. */
function goBytes(b: Buffer | undefined): string {
  return b === undefined ? 'null' : `"${b.toString('base64')}"`
}

/** The output JSON as Go prints it: both results present, the unused one null. */
export function unwrapOutput(optsdata: Buffer): Buffer {
  return Buffer.from(`{"keywrapresults":{"annotation":null},"keyunwrapresults":{"optsdata":${goBytes(optsdata)}}}`)
}

export function wrapOutput(annotation: Buffer): Buffer {
  return Buffer.from(`{"keywrapresults":{"annotation":${goBytes(annotation)}},"keyunwrapresults":{"optsdata":null}}`)
}
