import path from 'node:path'
import { ConfigError, type ConfigIssue } from './errors.js'
import { Reader, isObject, typeName, type JsonObject } from '../encoding/go-json.js'
import {
  CERTCACHE_TYPES,
  MOUNTER_MODES,
  UNLOCK_MODES,
  type AzureFilesystem,
  type AzureInfo,
  type EncfsConfig,
  type KeyBlob,
  type CacheSettings,
  type VeritySettings,
} from './schema.js'

const HEX = /^[0-9a-fA-F]*$/
const HOST_PORT = /^[A-Za-z0-9.-]+(:\d{1,5})?$/
const LOOPBACK = new Set(['localhost', '127.0.0.1', '[::1]', '::1'])

/** localhost, 127.0.0.0/8 or ::1 (bracketed or not). */
export function isLoopback(host: string): boolean {
  return LOOPBACK.has(host) || /^127\.\d+\.\d+\.\d+$/.test(host)
}

/**
 * `credential` names what would send a bearer token with requests to the URL (azure_url_private):
 * never over plain http. Without one Go reads http:// URLs (public or SAS blobs), and so does
 * encfs, with a warning.
 */
function checkUrl(r: Reader, url: string, at: string, credential?: string): void {
  if (url.startsWith('/')) return
  let u: URL
  try {
    u = new URL(url)
  } catch {
    r.add(at, `must be a blob URL (https://<account>.blob.core.windows.net/<container>/<blob>), a file:// URL or an absolute path, got "${url.split('?')[0]}"`)
    return
  }
  if (u.protocol === 'https:' || u.protocol === 'file:') return
  if (u.protocol === 'http:') {
    if (credential) r.add(at, `is plain http, and ${credential} sends a bearer token with every request, which is never sent unencrypted: use https://${u.host}/…`)
    else if (!isLoopback(u.hostname))
      r.warn(at, `is plain http to ${u.host}: the image (and a SAS signature, if the URL has one) travels unencrypted; the Go sidecar accepts it and so does encfs, but use https`)
    return
  }
  r.add(at, `unsupported scheme "${u.protocol}": use https://, file:// or an absolute path`)
}

export function checkEndpoint(r: Reader, value: string | undefined, at: string): void {
  if (value === undefined || value === '') return
  if (/^[a-z]+:\/\//i.test(value)) r.add(at, `must be a host name without a scheme (drop "${value.split('://')[0]}://"), got "${value}"`)
  else if (!HOST_PORT.test(value)) r.add(at, `must be a host name with an optional :port, got "${value}"`)
}

function readKey(r: Reader, fs: JsonObject, at: string): KeyBlob | undefined {
  const key = r.object(fs, 'key', `${at}.key`)
  if (!key) return undefined
  const authority = r.object(key, 'authority', `${at}.key.authority`)
  const akv = r.object(key, 'akv', `${at}.key.akv`)
  const out: KeyBlob = {
    kid: r.string(key, 'kid', `${at}.key.kid`),
    kty: r.string(key, 'kty', `${at}.key.kty`),
    key_ops: r.stringArray(key, 'key_ops', `${at}.key.key_ops`),
    authority: authority && {
      endpoint: r.string(authority, 'endpoint', `${at}.key.authority.endpoint`),
      tee_type: r.string(authority, 'tee_type', `${at}.key.authority.tee_type`),
      api_version: r.string(authority, 'api_version', `${at}.key.authority.api_version`),
    },
    akv: akv && {
      endpoint: r.string(akv, 'endpoint', `${at}.key.akv.endpoint`),
      api_version: r.string(akv, 'api_version', `${at}.key.akv.api_version`),
      bearer_token: r.string(akv, 'bearer_token', `${at}.key.akv.bearer_token`),
    },
  }
  checkEndpoint(r, out.authority?.endpoint, `${at}.key.authority.endpoint`)
  checkEndpoint(r, out.akv?.endpoint, `${at}.key.akv.endpoint`)
  if (out.kid) {
    if (!out.authority?.endpoint) r.add(`${at}.key.authority.endpoint`, 'is required with key.kid: the MAA host (for example sharedneu.neu.attest.azure.net)')
    if (!out.akv?.endpoint) r.add(`${at}.key.akv.endpoint`, 'is required with key.kid: the Key Vault or Managed HSM host (for example myvault.vault.azure.net)')
  }
  return out
}

function readCache(r: Reader, fs: JsonObject, at: string): CacheSettings | undefined {
  const c = r.object(fs, 'cache', `${at}.cache`)
  if (!c) return undefined
  return {
    block_size_kib: r.integer(c, 'block_size_kib', `${at}.cache.block_size_kib`, 4, 65536),
    memory_mib: r.integer(c, 'memory_mib', `${at}.cache.memory_mib`, 1, 65536),
    readahead_blocks: r.integer(c, 'readahead_blocks', `${at}.cache.readahead_blocks`, 0, 1024),
  }
}

const ROOT_HASH = /^[0-9a-fA-F]{64}$/

/** The verity extension; `readWrite` because a hash tree cannot follow writes. */
function readVerity(r: Reader, fs: JsonObject, at: string, readWrite: boolean): VeritySettings | undefined {
  const v = r.object(fs, 'verity', `${at}.verity`)
  if (!v) return undefined
  const before = r.issues.length
  const root = r.string(v, 'root_hash', `${at}.verity.root_hash`)
  if (root === undefined || root === '') {
    if (root === '' || r.member(v, 'root_hash') == null)
      r.add(`${at}.verity.root_hash`, 'is required: the sha256 root hash (64 hex digits) that encfs pack --verity or veritysetup format printed')
  } else if (!ROOT_HASH.test(root)) {
    r.add(
      `${at}.verity.root_hash`,
      `must be 64 hex digits (a sha256 root hash, as encfs pack --verity or veritysetup format print it), got ${root.length} characters${HEX.test(root) ? '' : ' that are not all hex'}`,
    )
  }
  const url = r.string(v, 'hash_url', `${at}.verity.hash_url`)
  if (url) checkUrl(r, url, `${at}.verity.hash_url`, r.member(fs, 'azure_url_private') === true ? `${at}.azure_url_private: true` : undefined)
  else if (url === '') r.add(`${at}.verity.hash_url`, 'must not be empty: give the blob URL of the hash tree, or use hash_offset instead')
  const rawOffset = r.member(v, 'hash_offset')
  let offset: number | undefined
  if (rawOffset !== undefined && rawOffset !== null) {
    if (typeof rawOffset !== 'number' || !Number.isSafeInteger(rawOffset) || rawOffset < 0 || rawOffset % 4096 !== 0) {
      r.add(
        `${at}.verity.hash_offset`,
        `must be a byte offset that is a non-negative multiple of 4096 (where the hash area starts in the image blob, as encfs pack --verity printed it), got ${JSON.stringify(rawOffset)}`,
      )
    } else offset = rawOffset
  }
  const rawBlocks = r.member(v, 'data_blocks')
  let dataBlocks: number | undefined
  if (rawBlocks !== undefined && rawBlocks !== null) {
    if (typeof rawBlocks !== 'number' || !Number.isSafeInteger(rawBlocks) || rawBlocks < 1 || rawBlocks > Number.MAX_SAFE_INTEGER / 4096) {
      r.add(
        `${at}.verity.data_blocks`,
        `must be the number of 4096-byte data blocks the tree covers (a positive whole number, as encfs pack --verity printed it), got ${JSON.stringify(rawBlocks)}`,
      )
    } else dataBlocks = rawBlocks
  }
  if (offset !== undefined && dataBlocks !== undefined && offset !== dataBlocks * 4096) {
    r.add(
      `${at}.verity.data_blocks`,
      `${dataBlocks} blocks are ${dataBlocks * 4096} bytes, but hash_offset ${offset} says the data ends there: an appended tree covers everything before it`,
    )
  }
  const hasUrl = url !== undefined
  const hasOffset = rawOffset !== undefined && rawOffset !== null
  if (hasUrl === hasOffset) {
    r.add(
      `${at}.verity`,
      hasUrl
        ? 'give hash_url or hash_offset, not both: the hash tree is either its own blob (hash_url) or inside the image blob after the data (hash_offset)'
        : 'needs hash_url (the hash tree as its own blob) or hash_offset (the hash tree inside the image blob, after the data)',
    )
  }
  if (readWrite) {
    r.add(
      `${at}.verity`,
      'cannot be used with read_write: true: a dm-verity hash tree covers one fixed version of the image and cannot follow writes; mount this filesystem read-only or remove verity',
    )
  }
  if (r.issues.length > before || root === undefined) return undefined
  return {
    root_hash: root.toLowerCase(),
    ...(url ? { hash_url: url } : {}),
    ...(offset !== undefined ? { hash_offset: offset } : {}),
    ...(dataBlocks !== undefined ? { data_blocks: dataBlocks } : {}),
  }
}

function readFilesystem(r: Reader, v: unknown, at: string): AzureFilesystem | undefined {
  if (!isObject(v)) {
    r.add(at, `must be an object, got ${typeName(v)}`)
    return undefined
  }
  let mountPoint = r.string(v, 'mount_point', `${at}.mount_point`)
  if (mountPoint === undefined || mountPoint === '') {
    if (mountPoint === '' || r.member(v, 'mount_point') == null) r.add(`${at}.mount_point`, 'is required: the absolute path where the filesystem appears')
  } else if (!mountPoint.startsWith('/')) {
    r.add(`${at}.mount_point`, `must be an absolute path, got "${mountPoint}"`)
    mountPoint = undefined
  } else if (mountPoint.split('/').includes('..')) {
    r.add(`${at}.mount_point`, `must not contain ".." segments, got "${mountPoint}"`)
    mountPoint = undefined
  } else {
    mountPoint = path.posix.normalize(mountPoint).replace(/\/+$/, '') || '/'
    if (mountPoint === '/') {
      r.add(`${at}.mount_point`, 'must not be "/"')
      mountPoint = undefined
    } else if (/^\.filesystem-\d+$/.test(path.posix.basename(mountPoint))) {
      // remotefs mounts filesystem N at <parent>/.filesystem-N and links the mount point to it.
      r.add(`${at}.mount_point`, `must not be named ".filesystem-<n>", a name remotefs uses for its own mounts; got "${mountPoint}"`)
      mountPoint = undefined
    }
  }
  const url = r.string(v, 'azure_url', `${at}.azure_url`)
  if (url === undefined || url === '') {
    if (url === '' || r.member(v, 'azure_url') == null) r.add(`${at}.azure_url`, 'is required: the blob URL (or file path) of the encrypted image')
  } else checkUrl(r, url, `${at}.azure_url`, r.member(v, 'azure_url_private') === true ? `${at}.azure_url_private: true` : undefined)
  const raw = r.string(v, 'raw_key', `${at}.raw_key`)
  if (raw !== undefined && raw !== '' && (!HEX.test(raw) || raw.length % 2 !== 0 || raw.length > 1024)) {
    r.add(`${at}.raw_key`, 'must be the hex of the key file bytes (an even number of hex digits, at most 512 bytes)')
  }
  const derivation = r.object(v, 'key_derivation', `${at}.key_derivation`)
  const kd = derivation && {
    salt: r.string(derivation, 'salt', `${at}.key_derivation.salt`),
    label: r.string(derivation, 'label', `${at}.key_derivation.label`),
  }
  if (kd?.salt && (!HEX.test(kd.salt) || kd.salt.length % 2 !== 0)) {
    // Go reads the salt only to derive the key from a released RSA key, so its example's placeholder works with oct keys.
    r.warn(
      `${at}.key_derivation.salt`,
      'is not hex (an even number of hex digits): it is used only when the released key is RSA, and then the mount fails (as in the Go sidecar); with an oct key it is ignored',
    )
  }
  const key = readKey(r, v, at)
  if (!key?.kid && !raw) {
    r.add(`${at}.key`, 'needs key.kid (with key.authority.endpoint and key.akv.endpoint) so the key can be released, or raw_key for testing')
  }
  // Read (and check) the remaining members before giving up on this filesystem, so that every
  // problem is reported at once.
  const rest = {
    azure_url_private: r.boolean(v, 'azure_url_private', `${at}.azure_url_private`),
    read_write: r.boolean(v, 'read_write', `${at}.read_write`),
    unlock: r.oneOf(v, 'unlock', `${at}.unlock`, UNLOCK_MODES),
    mounter: r.oneOf(v, 'mounter', `${at}.mounter`, MOUNTER_MODES),
    cache: readCache(r, v, at),
  }
  const verity = readVerity(r, v, at, rest.read_write)
  if (mountPoint === undefined || url === undefined) return undefined
  return {
    mount_point: mountPoint,
    azure_url: url,
    azure_url_private: rest.azure_url_private,
    read_write: rest.read_write,
    key,
    key_derivation: kd,
    raw_key: raw || undefined,
    unlock: rest.unlock,
    mounter: rest.mounter,
    cache: rest.cache,
    ...(verity ? { verity } : {}),
  }
}

function readInfoMembers(r: Reader, info: JsonObject, prefix: string): AzureInfo {
  const at = (m: string) => (prefix ? `${prefix}.${m}` : m)
  const cc = r.object(info, 'certcache', at('certcache'))
  const id = r.object(info, 'identity', at('identity'))
  return {
    certcache: cc && {
      endpoint_type: endpointType(r, cc, at('certcache.endpoint_type')),
      endpoint: r.string(cc, 'endpoint', at('certcache.endpoint')),
      tee_type: r.string(cc, 'tee_type', at('certcache.tee_type')),
      api_version: r.string(cc, 'api_version', at('certcache.api_version')),
      client_id: r.string(cc, 'client_id', at('certcache.client_id')),
    },
    identity: id && {
      client_id: r.string(id, 'client_id', at('identity.client_id')) || undefined,
      resource_id: r.string(id, 'resource_id', at('identity.resource_id')) || undefined,
    },
  }
}

/**
 * certcache.endpoint_type in any letter case, read as its canonical name: Go compares it exactly,
 * so `localthim` is accepted at start and fails ("invalid endpoint type") only the day the
 * certificate cache is needed; encfs uses it. Unknown types cannot work and are refused.
 */
function endpointType(r: Reader, cc: JsonObject, path: string): (typeof CERTCACHE_TYPES)[number] | undefined {
  const v = r.string(cc, 'endpoint_type', path)
  if (v === undefined || v === '') return undefined
  const canonical = CERTCACHE_TYPES.find((t) => t.toLowerCase() === v.toLowerCase())
  if (!canonical) {
    r.add(path, `must be one of ${CERTCACHE_TYPES.join(', ')}, got ${JSON.stringify(v)}`)
    return undefined
  }
  if (canonical !== v)
    r.warn(
      path,
      `"${v}" is read as "${canonical}" (the Go sidecar accepts it at start but fails with "invalid endpoint type" when it needs the certificate cache); write "${canonical}"`,
    )
  return canonical
}

function readAzureInfo(r: Reader, top: JsonObject): AzureInfo | undefined {
  const info = r.object(top, 'azure_info', 'azure_info')
  return info ? readInfoMembers(r, info, 'azure_info') : undefined
}

/** The skr sidecar's configuration (SkrSideCarArgs, AaspSideCarArgs). */
export type SkrConfig = AzureInfo & { maaconfig?: { user_agent?: string } }

/** The skr sidecar's configuration (`AzureInformation`: certcache, identity, maaconfig), all optional. */
export function validateSkrConfig(json: unknown, source = 'configuration', warnings: ConfigIssue[] = []): SkrConfig {
  const r = new Reader()
  if (!isObject(json)) throw ConfigError.invalid([{ path: '(top level)', message: `must be a JSON object, got ${typeName(json)}` }], source)
  const info = readInfoMembers(r, json, '')
  const maa = r.object(json, 'maaconfig', 'maaconfig')
  const userAgent = maa ? r.string(maa, 'user_agent', 'maaconfig.user_agent') : undefined
  if (r.issues.length > 0) throw ConfigError.invalid(r.issues, source)
  warnings.push(...r.warnings)
  return { ...info, ...(maa ? { maaconfig: { user_agent: userAgent } } : {}) }
}

/**
 * Validates a decoded configuration; every problem is reported at once, with its JSON path. What
 * Go accepts but is unwise is accepted, and said in `warnings`.
 */
export function validateConfig(json: unknown, source = 'configuration', warnings: ConfigIssue[] = []): EncfsConfig {
  const r = new Reader()
  if (!isObject(json)) throw ConfigError.invalid([{ path: '(top level)', message: `must be a JSON object, got ${typeName(json)}` }], source)
  const azureInfo = readAzureInfo(r, json)
  const list = r.member(json, 'azure_filesystems')
  const filesystems: AzureFilesystem[] = []
  if (list === undefined || list === null) {
    r.add('azure_filesystems', 'is required: a list of at least one filesystem')
  } else if (!Array.isArray(list)) {
    r.add('azure_filesystems', `must be an array, got ${typeName(list)}`)
  } else {
    const seen: { index: number; mountPoint: string }[] = []
    list.forEach((item, i) => {
      const fs = readFilesystem(r, item, `azure_filesystems[${i}]`)
      if (!fs) return
      for (const other of seen) {
        const a = fs.mount_point
        const b = other.mountPoint
        if (a === b) r.add(`azure_filesystems[${i}].mount_point`, `"${a}" is already the mount point of azure_filesystems[${other.index}]; each filesystem needs its own`)
        else if (a.startsWith(`${b}/`) || b.startsWith(`${a}/`))
          r.add(`azure_filesystems[${i}].mount_point`, `"${a}" is nested with azure_filesystems[${other.index}].mount_point "${b}"; mount points must not contain each other`)
      }
      seen.push({ index: i, mountPoint: fs.mount_point })
      filesystems.push(fs)
    })
  }
  if (r.issues.length > 0) throw ConfigError.invalid(r.issues, source)
  warnings.push(...r.warnings)
  return { ...(azureInfo ? { azure_info: azureInfo } : {}), azure_filesystems: filesystems }
}
