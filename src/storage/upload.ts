import { open, stat } from 'node:fs/promises'
import { AnonymousCredential, BlobClient, type StorageSharedKeyCredential } from '@azure/storage-blob'
import type { TokenCredential } from '@azure/identity'
import { silentLogger, type Logger } from '../log/logger.js'
import { redactUrl } from '../log/redact.js'
import { storageError } from './storage-error.js'

/**
 * Uploads an image: a page blob (needed for read_write; pages of zeros are skipped, so sparse
 * images upload fast) or a block blob (read-only). The size is padded to 512 bytes for pages.
 */
export async function uploadImage(
  file: string,
  url: string,
  o: { page: boolean; credential?: TokenCredential; sharedKey?: StorageSharedKeyCredential; logger?: Logger },
): Promise<{ bytes: number; kind: 'page' | 'block' }> {
  const logger = o.logger ?? silentLogger
  const client = new BlobClient(url, o.sharedKey ?? o.credential ?? new AnonymousCredential())
  const size = (await stat(file)).size
  try {
    if (!o.page) {
      await client.getBlockBlobClient().uploadFile(file, { blockSize: 8 * 1024 * 1024, concurrency: 4, onProgress: (p) => logger.debug({ bytes: p.loadedBytes }, 'uploading') })
      return { bytes: size, kind: 'block' }
    }
    const pages = client.getPageBlobClient()
    const padded = Math.ceil(size / 512) * 512
    await pages.create(padded)
    const fh = await open(file, 'r')
    try {
      const chunk = Buffer.alloc(4 * 1024 * 1024)
      for (let off = 0; off < padded; off += chunk.length) {
        const len = Math.min(chunk.length, padded - off)
        chunk.fill(0)
        await fh.read(chunk, 0, Math.min(len, Math.max(0, size - off)), off)
        if (chunk.subarray(0, len).some((b) => b !== 0)) await pages.uploadPages(chunk.subarray(0, len), off, len)
        if (off % (64 * 1024 * 1024) === 0) logger.info({ bytes: off, of: padded }, 'uploading pages')
      }
    } finally {
      await fh.close()
    }
    return { bytes: padded, kind: 'page' }
  } catch (err) {
    throw storageError(err, { url }, `uploading ${file} to ${redactUrl(url)}`)
  }
}
