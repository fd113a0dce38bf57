import { readFile } from 'node:fs/promises'
import { silentLogger, type Logger } from '../log/logger.js'

/** Where Linux exposes the boot's TCG event log; MAA replays it against the quoted PCRs. */
export const TCG_LOG_PATH = '/sys/kernel/security/tpm0/binary_bios_measurements'

export interface GuestPlatform {
  os: { type: 'Linux'; distro: string; versionMajor: number; versionMinor: number; build: string }
  tcgLog: Buffer
}

/** The OS description and TCG log guest attestation sends, read as Azure's guest attestation library reads them. */
export async function guestPlatform(o: { osRelease?: string; tcgLog?: string; logger?: Logger } = {}): Promise<GuestPlatform> {
  const logger = o.logger ?? silentLogger
  const fields = new Map<string, string>()
  const text = await readFile(o.osRelease ?? '/etc/os-release', 'utf8').catch(() => '')
  for (const line of text.split('\n')) {
    const m = /^([A-Z_]+)=(.*)$/.exec(line.trim())
    if (m) fields.set(m[1]!, m[2]!.replace(/^"(.*)"$/, '$1'))
  }
  const [major = 1, minor = 0] = (fields.get('VERSION_ID') ?? '1.0').split('.').map((x) => Number.parseInt(x, 10) || 0)
  const tcgLog = await readFile(o.tcgLog ?? TCG_LOG_PATH).catch((err: NodeJS.ErrnoException) => {
    logger.warn({ path: o.tcgLog ?? TCG_LOG_PATH, reason: err.code }, 'no TCG event log: guest attestation goes on without one (MAA then cannot replay the boot)')
    return Buffer.alloc(0)
  })
  return { os: { type: 'Linux', distro: fields.get('NAME') ?? 'Linux', versionMajor: major || 1, versionMinor: minor, build: 'NotApplicable' }, tcgLog }
}
