import path from 'node:path'
import type { Logger } from '../log/logger.js'
import { silentLogger } from '../log/logger.js'
import type { KeySpec } from '../keys/provider.js'
import { DEFAULT_DERIVATION_LABEL } from '../skr/derive.js'
import type { VerityPlan } from '../verity/open-verity.js'
import { ConfigError, type ConfigIssue } from './errors.js'
import type { CacheSettings, EncfsConfig, MounterMode, UnlockMode } from './schema.js'

/** Everything remotefs needs to mount one filesystem, resolved from the configuration. */
export interface FilesystemPlan {
  /** Position in azure_filesystems (N in `.filesystem-N`). */
  index: number
  mountPoint: string
  parentDir: string
  /** `<parent of mount_point>/.filesystem-N`, where ext4 is mounted. */
  mountDir: string
  /** Relative target of the mount point symlink. */
  symlinkTarget: string
  url: string
  private: boolean
  readWrite: boolean
  unlock: UnlockMode
  mounter: MounterMode
  cache?: CacheSettings
  /** dm-verity: the pinned root hash, and where the hash area is (its own blob, or in the image). */
  verity?: VerityPlan
  key: KeySpec
}

export interface PlanOptions {
  /** The operator opted in to raw_key (--allow-raw-key or EncfsAllowRawKey=true). */
  allowRawKey: boolean
  unlock?: UnlockMode
  mounter?: MounterMode
  logger?: Logger
}

export function planFilesystems(cfg: EncfsConfig, o: PlanOptions): FilesystemPlan[] {
  const logger = o.logger ?? silentLogger
  const issues: ConfigIssue[] = []
  const plans: FilesystemPlan[] = []
  cfg.azure_filesystems.forEach((fs, index) => {
    const at = `azure_filesystems[${index}]`
    let key: KeySpec | undefined
    if (fs.raw_key && o.allowRawKey) {
      logger.warn(
        { filesystem: index },
        `${at}: using raw_key from the configuration. This is a TEST MODE: the key is in the configuration instead of being released to an attested environment`,
      )
      key = { kind: 'raw', hex: fs.raw_key }
    } else if (fs.key?.kid) {
      if (fs.raw_key) logger.warn({ filesystem: index }, `${at}.raw_key is ignored: raw keys need --allow-raw-key (or EncfsAllowRawKey=true); releasing key.kid instead`)
      key = {
        kind: 'release',
        kid: fs.key.kid,
        ...(fs.key.kty ? { kty: fs.key.kty } : {}),
        maaEndpoint: fs.key.authority?.endpoint ?? '',
        akvEndpoint: fs.key.akv?.endpoint ?? '',
        ...(fs.key.akv?.bearer_token ? { bearerToken: fs.key.akv.bearer_token } : {}),
        derivation: { salt: fs.key_derivation?.salt ?? '', label: fs.key_derivation?.label || DEFAULT_DERIVATION_LABEL },
      }
    } else if (fs.raw_key) {
      issues.push({
        path: `${at}.raw_key`,
        message:
          'raw keys are a test mode and are ignored unless the operator opts in: pass --allow-raw-key to remotefs, or set EncfsAllowRawKey=true; in production give key.kid for secure key release',
      })
    }
    if (!key) return
    const parentDir = path.posix.dirname(fs.mount_point)
    plans.push({
      index,
      mountPoint: fs.mount_point,
      parentDir,
      mountDir: path.posix.join(parentDir, `.filesystem-${index}`),
      symlinkTarget: `.filesystem-${index}`,
      url: fs.azure_url,
      private: fs.azure_url_private,
      readWrite: fs.read_write,
      unlock: fs.unlock ?? o.unlock ?? 'auto',
      mounter: fs.mounter ?? o.mounter ?? 'auto',
      ...(fs.cache ? { cache: fs.cache } : {}),
      ...(fs.verity
        ? {
            verity: {
              ...(fs.verity.hash_url !== undefined
                ? { rootHash: fs.verity.root_hash, hashUrl: fs.verity.hash_url }
                : { rootHash: fs.verity.root_hash, hashOffset: fs.verity.hash_offset ?? 0 }),
              ...(fs.verity.data_blocks !== undefined ? { dataBlocks: fs.verity.data_blocks } : {}),
            },
          }
        : {}),
      key,
    })
  })
  if (issues.length > 0) throw ConfigError.invalid(issues)
  return plans
}
