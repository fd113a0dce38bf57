import { mkdir, readFile, rmdir, writeFile } from 'node:fs/promises'
import { randomBytes } from 'node:crypto'
import path from 'node:path'
import { AttestationError } from '../errors.js'
import { reportDataBlock, type ReportProvider } from './provider.js'

export const TSM_REPORT_ROOT = '/sys/kernel/config/tsm/report'

/**
 * Linux configfs-tsm (6.7+): a directory of our own per request, so concurrent requesters never
 * mix inputs; the generation counter catches anyone who writes into it anyway.
 */
export function tsmProvider(root = TSM_REPORT_ROOT): ReportProvider {
  return {
    name: 'tsm',
    location: root,
    async getReport(reportData: Buffer): Promise<Buffer> {
      const dir = path.join(root, `encfs-${process.pid}-${randomBytes(4).toString('hex')}`)
      try {
        await mkdir(dir)
      } catch (err) {
        const e = err as NodeJS.ErrnoException
        if (e.code === 'ENOENT')
          throw new AttestationError('ATTEST_DEVICE_MISSING', `${root} does not exist: the kernel has no configfs-tsm (Linux 6.7+ with configfs mounted at /sys/kernel/config)`, {
            cause: err,
          })
        throw new AttestationError('ATTEST_DEVICE_FAILED', `cannot create ${dir}: ${e.message}`, { cause: err })
      }
      try {
        const provider = (await readFile(path.join(dir, 'provider'), 'utf8')).trim()
        if (provider !== 'sev_guest') throw new AttestationError('ATTEST_DEVICE_FAILED', `configfs-tsm provider is "${provider}", not sev_guest: this is not an SEV-SNP guest`)
        await writeFile(path.join(dir, 'inblob'), reportDataBlock(reportData))
        const before = (await readFile(path.join(dir, 'generation'), 'utf8')).trim()
        const report = await readFile(path.join(dir, 'outblob'))
        const after = (await readFile(path.join(dir, 'generation'), 'utf8')).trim()
        if (before !== after) throw new AttestationError('ATTEST_DEVICE_FAILED', `${dir} was written by someone else during the request (generation ${before} -> ${after})`)
        if (report.length !== 1184) throw new AttestationError('ATTEST_REPORT_SIZE', `configfs-tsm returned ${report.length} bytes instead of a 1184-byte report`)
        return report
      } catch (err) {
        if (err instanceof AttestationError) throw err
        throw new AttestationError('ATTEST_DEVICE_FAILED', `configfs-tsm report in ${dir} failed: ${(err as Error).message}`, { cause: err })
      } finally {
        await rmdir(dir).catch(() => {})
      }
    },
  }
}
