import { readFile } from 'node:fs/promises'
import type { Argv } from 'yargs'
import { commandLogger } from './command-logger.js'
import { selectProvider } from '../attestation/providers/select.js'
import { ATTESTATION_MODES } from '../attestation/providers/provider.js'
import { defaultSimulatedStateDir } from '../attestation/providers/simulated.js'
import { decodeReportInput, parseReport, type SnpReport } from '../attestation/report.js'
import { AttestationError } from '../attestation/errors.js'

/** JSON with bigints as strings and TCB values as their TCBM hex. */
function toJson(report: SnpReport): string {
  return JSON.stringify(report, (_k, v: unknown) => (typeof v === 'bigint' ? `0x${v.toString(16)}` : v), 2)
}

/** One `name: value` line per field, nested objects flattened, like the Go hex2report tool. */
function toText(report: SnpReport): string {
  const lines: string[] = []
  const walk = (prefix: string, v: unknown): void => {
    if (v && typeof v === 'object' && !Array.isArray(v)) {
      for (const [k, x] of Object.entries(v)) walk(prefix ? `${prefix}.${k}` : k, x)
    } else lines.push(`${prefix}: ${typeof v === 'bigint' ? `0x${v.toString(16)}` : Array.isArray(v) ? v.join(',') : String(v)}`)
  }
  walk('', report)
  return `${lines.join('\n')}\n`
}

const isHexOfAtMost = (text: string, bytes: number): boolean => /^([0-9a-fA-F]{2})*$/.test(text) && text.length <= 2 * bytes

async function readInput(file: string): Promise<Buffer> {
  if (file !== '-') return readFile(file)
  const chunks: Buffer[] = []
  for await (const c of process.stdin) chunks.push(c as Buffer)
  return Buffer.concat(chunks)
}

export function reportCommand<T>(y: Argv<T>): Argv<T> {
  return y.command(
    'report',
    'fetch an SEV-SNP attestation report and print it (hex like get-snp-report, or decoded), or decode one with --decode',
    (c) =>
      c
        .option('report-data', { type: 'string', default: '', describe: 'hex, at most 64 bytes, placed at the start of REPORT_DATA' })
        .option('host-data', {
          type: 'string',
          describe: 'hex, at most 32 bytes, placed at the start of HOST_DATA (--attestation simulated only: a real chip takes it from the launch)',
        })
        .option('attestation', { type: 'string', choices: ATTESTATION_MODES, default: process.env.EncfsAttestation || 'auto', describe: 'report source (env EncfsAttestation)' })
        .option('simulated-state', {
          type: 'string',
          describe: 'state directory of the simulated chip (env EncfsSimulatedState)',
          default: process.env.EncfsSimulatedState || defaultSimulatedStateDir(),
        })
        .option('format', { type: 'string', choices: ['hex', 'json', 'text'] as const, describe: 'output (default hex when fetching, text when decoding)' })
        .option('decode', { type: 'string', describe: 'decode this report file (hex or binary; - for stdin) instead of fetching' }),
    async (args) => {
      const logger = commandLogger(args)
      let raw: Buffer
      if (args.decode !== undefined) raw = decodeReportInput(await readInput(args.decode))
      else {
        if (!isHexOfAtMost(args['report-data'], 64)) throw new AttestationError('ATTEST_REPORT_DATA_INVALID', '--report-data must be hex of at most 64 bytes')
        const hostData = args['host-data']
        if (hostData !== undefined && (!isHexOfAtMost(hostData, 32) || args.attestation !== 'simulated')) {
          throw new AttestationError(
            'ATTEST_REPORT_DATA_INVALID',
            '--host-data must be hex of at most 32 bytes, with --attestation simulated (a real chip takes HOST_DATA from the launch)',
          )
        }
        const simulatedHostData = hostData === undefined ? undefined : Buffer.concat([Buffer.from(hostData, 'hex'), Buffer.alloc(32)]).subarray(0, 32)
        const provider = await selectProvider(args.attestation, { logger, simulated: { stateDir: args['simulated-state'], hostData: simulatedHostData } })
        raw = await provider.getReport(Buffer.from(args['report-data'], 'hex'))
      }
      const format = args.format ?? (args.decode !== undefined ? 'text' : 'hex')
      if (format === 'hex') process.stdout.write(`${raw.toString('hex')}\n`)
      else process.stdout.write(format === 'json' ? `${toJson(parseReport(raw))}\n` : toText(parseReport(raw)))
    },
  )
}
