import { constants, createCipheriv, publicEncrypt, randomBytes, type KeyObject } from 'node:crypto'
import { OAEP_HASH } from '../../skr/unwrap.js'

/** What the HSM does on release: RSA-OAEP of a fresh AES-256 KEK, then AES key wrap with padding of the key. */
export function wrapForRelease(material: Buffer, enc: string, runtimeKey: KeyObject): Buffer {
  const hash = OAEP_HASH[enc]
  if (!hash) throw new Error(`unsupported enc ${enc}`)
  const kek = randomBytes(32)
  try {
    const c1 = publicEncrypt({ key: runtimeKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: hash }, kek)
    const w = createCipheriv('id-aes256-wrap-pad', kek, Buffer.from('A65959A6', 'hex'))
    return Buffer.concat([c1, w.update(material), w.final()])
  } finally {
    kek.fill(0)
  }
}
