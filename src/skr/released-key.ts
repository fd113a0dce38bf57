import { createPrivateKey, type JsonWebKey } from 'node:crypto'
import { SkrError } from './errors.js'

export interface ReleasedKey {
  /** kty as Go's JWK reports it: oct-HSM becomes oct, RSA-HSM RSA, EC-HSM EC. */
  kty: 'oct' | 'RSA' | 'EC'
  keyOps: string[]
  /** oct: the key bytes; RSA and EC: PKCS#8 DER of the private key. Zero it when done. */
  material: Buffer
  /** The key as a JWK (private for RSA and EC), members sorted as Go's jwx prints them. */
  jwk(): JsonWebKey
}

const JWK_OPS = ['sign', 'verify', 'encrypt', 'decrypt', 'wrapKey', 'unwrapKey', 'deriveKey', 'deriveBits']

function sorted(o: Record<string, unknown>): JsonWebKey {
  return Object.fromEntries(Object.entries(o).sort(([a], [b]) => (a < b ? -1 : 1))) as JsonWebKey
}

/** Interprets the unwrapped plaintext by the released key's kty (docs/key-release.md#released-key-types). */
export function interpretReleasedKey(kty: string | undefined, keyOps: string[] | undefined, plaintext: Buffer): ReleasedKey {
  const ops = keyOps ?? []
  const badOp = ops.find((op) => !JWK_OPS.includes(op))
  if (badOp) throw new SkrError('SKR_KEY_TYPE', `the released key has key_ops "${badOp}", which a JWK cannot carry`)
  const withOps = (o: Record<string, unknown>) => sorted(ops.length > 0 ? { ...o, key_ops: ops } : o)
  switch (kty) {
    case 'oct':
    case 'oct-HSM':
      return { kty: 'oct', keyOps: ops, material: plaintext, jwk: () => withOps({ kty: 'oct', k: plaintext.toString('base64url') }) }
    case 'RSA':
    case 'RSA-HSM':
    case 'EC':
    case 'EC-HSM': {
      let jwk: JsonWebKey
      try {
        jwk = createPrivateKey({ key: plaintext, format: 'der', type: 'pkcs8' }).export({ format: 'jwk' })
      } catch (err) {
        throw new SkrError('SKR_KEY_TYPE', `the released ${kty} key is not a PKCS#8 private key: ${(err as Error).message}`, { cause: err })
      }
      const base = kty.startsWith('RSA') ? 'RSA' : 'EC'
      if (jwk.kty !== base) throw new SkrError('SKR_KEY_TYPE', `the released key claims kty ${kty} but holds a ${jwk.kty} key`)
      return { kty: base, keyOps: ops, material: plaintext, jwk: () => withOps({ ...jwk }) }
    }
    default:
      throw new SkrError('SKR_KEY_TYPE', `released key type ${kty ?? '(none)'} not supported (oct, RSA or EC, plain or -HSM)`)
  }
}
