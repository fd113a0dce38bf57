import { KeyError } from './errors.js'

/**
 * The `raw_key` test mode: the hex of the key file bytes, straight from the configuration. Only
 * reachable when the operator opted in (config/plan.ts enforces that).
 */
export function decodeRawKey(hex: string, where: string): Buffer {
  if (hex.length === 0 || hex.length % 2 !== 0 || !/^[0-9a-fA-F]+$/.test(hex)) {
    throw new KeyError('KEY_RAW_INVALID', `${where}: raw_key must be the hex of the key file bytes`)
  }
  return Buffer.from(hex, 'hex')
}
