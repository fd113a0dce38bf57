/**
 * The Go sidecar's configuration (`RemoteFilesystemsInformation`), member names as Go spells
 * them, plus our extensions (marked). Values here are already validated. The parts a domain
 * consumes as they are (certcache, identity) are declared by that domain.
 */
import type { CertCache } from '../attestation/cert-fetch.js'
import type { IdentityConfig } from '../identity/credential.js'

export type { CertCache }
export { CERTCACHE_TYPES } from '../attestation/cert-fetch.js'
/** `azure_info.identity`; `resource_id` is an extension (IMDS `mi_res_id`). */
export type Identity = IdentityConfig

export interface AzureInfo {
  certcache?: CertCache
  identity?: Identity
}

export interface KeyBlob {
  kid?: string
  kty?: string
  key_ops?: string[]
  authority?: { endpoint?: string; tee_type?: string; api_version?: string }
  akv?: { endpoint?: string; api_version?: string; bearer_token?: string }
}

export interface KeyDerivation {
  salt?: string
  label?: string
}

export type UnlockMode = 'auto' | 'kernel' | 'userspace'
export type MounterMode = 'auto' | 'loop' | 'fuse2fs'

export interface CacheSettings {
  block_size_kib?: number
  memory_mib?: number
  readahead_blocks?: number
}

/**
 * Extension: the image is checked against a dm-verity hash tree whose root hash is pinned here
 * (docs/dm-verity.md). The tree is its own blob (hash_url) or follows the data in the image's
 * blob (hash_offset); exactly one of the two.
 */
export interface VeritySettings {
  /** sha256 root hash, 64 hex digits, as veritysetup format / encfs pack --verity print it. */
  root_hash: string
  /** Blob URL (or file) of the hash area; read with the same credential rules as azure_url. */
  hash_url?: string
  /** Byte offset of the hash area inside the image blob; the image is the data before it. */
  hash_offset?: number
  /**
   * The data blocks (4096 bytes) the tree covers, as encfs pack / upload print it. Optional; with
   * hash_url it is what tells the tree's own blocks, presented as an image, from the image.
   */
  data_blocks?: number
}

export interface AzureFilesystem {
  mount_point: string
  azure_url: string
  azure_url_private: boolean
  read_write: boolean
  key?: KeyBlob
  key_derivation?: KeyDerivation
  raw_key?: string
  /** Extension: how to decrypt this filesystem. */
  unlock?: UnlockMode
  /** Extension: how to mount its ext4. */
  mounter?: MounterMode
  /** Extension: block cache settings. */
  cache?: CacheSettings
  /** Extension: tamper evidence with a dm-verity hash tree (read-only filesystems). */
  verity?: VeritySettings
}

export interface EncfsConfig {
  azure_info?: AzureInfo
  azure_filesystems: AzureFilesystem[]
}

export const UNLOCK_MODES: readonly UnlockMode[] = ['auto', 'kernel', 'userspace']
export const MOUNTER_MODES: readonly MounterMode[] = ['auto', 'loop', 'fuse2fs']
