import type { Logger } from '../log/logger.js'
import type { RangeSource } from '../storage/range-source.js'
import { openSource } from '../storage/open-source.js'
import type { IdentityConfig } from '../identity/credential.js'
import { StorageError } from '../storage/errors.js'
import { redactUrl } from '../log/redact.js'
import { EncfsError } from '../errors/encfs-error.js'
import { VeritySource } from './verity-source.js'

/** dm-verity as planned from the configuration: the pinned root hash, and where the hash area is (its own blob, or in the image). */
export type VerityPlan = { rootHash: string; dataBlocks?: number } & ({ hashUrl: string; hashOffset?: undefined } | { hashOffset: number; hashUrl?: undefined })

export interface OpenVerityOptions {
  /** azure_url_private: the hash blob is read with the same credential as the image. */
  private: boolean
  identity?: IdentityConfig
  logger: Logger
  signal?: AbortSignal
}

/**
 * The image's data area, verified against the configured tree: the hash area is its own blob
 * (hash_url, opened with the image's credential rules and ETag-pinned like it) or follows the
 * data in the image blob (hash_offset). On success the VeritySource owns `image` and the hash
 * blob; on failure only what this opened is closed.
 */
export async function openVerity(image: RangeSource, plan: VerityPlan, o: OpenVerityOptions): Promise<VeritySource> {
  const rootHash = Buffer.from(plan.rootHash, 'hex')
  const dataBlocks = plan.dataBlocks !== undefined ? { dataBlocks: plan.dataBlocks } : {}
  if (plan.hashUrl === undefined) {
    return VeritySource.open(image, image, { rootHash, hashOffset: plan.hashOffset, where: `the image at verity.hash_offset ${plan.hashOffset}`, logger: o.logger, ...dataBlocks })
  }
  if (plan.dataBlocks === undefined) {
    o.logger.warn(
      { hashUrl: redactUrl(plan.hashUrl) },
      'verity.data_blocks is not pinned: with the tree in its own blob, whoever can replace both blobs can present part of the tree as the image; add the data_blocks encfs pack --verity / encfs upload printed',
    )
  }
  const hash = await openSource(plan.hashUrl, { private: o.private, identity: o.identity, logger: o.logger, signal: o.signal }).catch((err: unknown) => {
    // The storage layer speaks of "the image": say which blob this is.
    if (err instanceof EncfsError) throw new StorageError(err.code, `verity.hash_url (the hash tree): ${err.message}`, { cause: err })
    throw err
  })
  try {
    return await VeritySource.open(image, hash, { rootHash, hashOffset: 0, where: `verity.hash_url ${redactUrl(plan.hashUrl)}`, logger: o.logger, ...dataBlocks })
  } catch (err) {
    await hash.close()
    throw err
  }
}
