import path from 'node:path'
import { constants, createPublicKey, privateDecrypt, publicEncrypt, type KeyObject } from 'node:crypto'
import { Reader, isObject } from '../encoding/go-json.js'
import { checkEndpoint } from '../config/validate.js'
import { KeyProviderError } from './errors.js'
import { formatAnnotation, type Annotation } from './annotation.js'
import { parseJson } from '../encoding/json.js'
import { readSmallFile } from './bounded-file.js'

/** A key-info JSON or a PEM public key is a few KiB (an RSA-16384 public key: 3 KiB). */
export const MAX_KEY_FILE_BYTES = 64 * 1024

/** What `<key path>-info.json` says about a wrapping key (written next to the key by the set-up scripts). */
export interface KeyInfo {
  publicKeyPath: string
  kmsEndpoint: string
  attesterEndpoint: string
}

const OAEP = { padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' } as const

export async function readKeyInfo(keyPath: string): Promise<KeyInfo> {
  const file = `${keyPath}-info.json`
  const text = (
    await readSmallFile(
      file,
      MAX_KEY_FILE_BYTES,
      (reason, cause) =>
        new KeyProviderError(
          'KEYPROVIDER_KEY_INFO',
          `cannot read the key info file ${file} (${reason}): the key path names the wrapping key without -info.json, and ${path.basename(file)} must sit next to it`,
          { cause },
        ),
    )
  ).toString('utf8')
  const json = parseJson(
    text,
    (err) =>
      new KeyProviderError('KEYPROVIDER_KEY_INFO', `${file} is not JSON (${err.message}); it must be {"public_key_path":…,"kms_endpoint":…,"attester_endpoint":…}`, { cause: err }),
  )
  const r = new Reader()
  if (!isObject(json)) throw new KeyProviderError('KEYPROVIDER_KEY_INFO', `${file} must be a JSON object {"public_key_path":…,"kms_endpoint":…,"attester_endpoint":…}`)
  const info = {
    publicKeyPath: r.string(json, 'public_key_path', 'public_key_path') ?? '',
    kmsEndpoint: r.string(json, 'kms_endpoint', 'kms_endpoint') ?? '',
    attesterEndpoint: r.string(json, 'attester_endpoint', 'attester_endpoint') ?? '',
  }
  if (!info.publicKeyPath) r.add('public_key_path', 'is required: the PEM public key of the wrapping key')
  if (!info.kmsEndpoint) r.add('kms_endpoint', 'is required: the Key Vault or Managed HSM host that holds the private key')
  if (!info.attesterEndpoint) r.add('attester_endpoint', "is required: the MAA host named in the key's release policy")
  checkEndpoint(r, info.kmsEndpoint, 'kms_endpoint')
  checkEndpoint(r, info.attesterEndpoint, 'attester_endpoint')
  if (r.issues.length > 0) throw new KeyProviderError('KEYPROVIDER_KEY_INFO', `invalid key info file ${file}: ${r.issues.map((i) => `${i.path} ${i.message}`).join('; ')}`)
  // A relative public_key_path is taken from the working directory, as skr does.
  return info
}

async function readPublicKey(file: string): Promise<KeyObject> {
  const pem = await readSmallFile(
    file,
    MAX_KEY_FILE_BYTES,
    (reason, cause) => new KeyProviderError('KEYPROVIDER_KEY_INFO', `cannot read the public key ${file} (public_key_path; ${reason})`, { cause }),
  )
  let key: KeyObject
  try {
    key = createPublicKey({ key: pem, format: 'pem' })
  } catch (err) {
    throw new KeyProviderError('KEYPROVIDER_KEY_INFO', `${file} is not a PEM public key (-----BEGIN PUBLIC KEY-----): ${(err as Error).message}`, { cause: err })
  }
  if (key.asymmetricKeyType !== 'rsa')
    throw new KeyProviderError('KEYPROVIDER_KEY_INFO', `${file} holds a ${key.asymmetricKeyType ?? 'non-RSA'} key; wrapping needs an RSA public key`)
  return key
}

/**
 * What skr's WrapKey and `skr -infile -keypath -outfile` do: RSA-OAEP-SHA256 of the data with the
 * public key named by `<keyPath>-info.json`, in an annotation naming the key (the last element of
 * keyPath), the vault and the MAA. Returns the annotation JSON bytes.
 */
export async function wrapWithKeyInfo(data: Buffer, keyPath: string): Promise<{ annotation: Buffer; fields: Annotation }> {
  const info = await readKeyInfo(keyPath)
  const publicKey = await readPublicKey(info.publicKeyPath)
  let wrappedData: Buffer
  try {
    wrappedData = publicEncrypt({ key: publicKey, ...OAEP }, data)
  } catch (err) {
    throw new KeyProviderError(
      'KEYPROVIDER_WRAP_FAILED',
      `cannot wrap ${data.length} bytes with the ${publicKey.asymmetricKeyDetails?.modulusLength ?? '?'}-bit key ${info.publicKeyPath}: RSA-OAEP-SHA256 takes at most ${(publicKey.asymmetricKeyDetails?.modulusLength ?? 0) / 8 - 66} bytes`,
      { cause: err },
    )
  }
  const fields: Annotation = { kid: path.basename(keyPath), wrappedData, kmsEndpoint: info.kmsEndpoint, attesterEndpoint: info.attesterEndpoint }
  return { annotation: formatAnnotation(fields), fields }
}

/** RSA-OAEP-SHA256 decryption of an annotation's wrapped data with the released private key. */
export function unwrapWithPrivateKey(wrappedData: Buffer, privateKey: KeyObject, kid: string): Buffer {
  try {
    return privateDecrypt({ key: privateKey, ...OAEP }, wrappedData)
  } catch (err) {
    throw new KeyProviderError(
      'KEYPROVIDER_UNWRAP_FAILED',
      `the wrapped data cannot be decrypted with the released key ${kid} (RSA-OAEP-SHA256): it was wrapped with another key, or is damaged`,
      { cause: err },
    )
  }
}
