import { readFile } from 'node:fs/promises'
import type { Argv } from 'yargs'
import { commandLogger } from './command-logger.js'
import { selectProvider } from '../attestation/providers/select.js'
import { ATTESTATION_MODES } from '../attestation/providers/provider.js'
import { defaultSimulatedStateDir } from '../attestation/providers/simulated.js'
import { decodeReportInput, parseReport } from '../attestation/report.js'
import { AttestationError } from '../attestation/errors.js'
import { HCL_SIGNATURE, parseHclReport, type HclReport } from '../attestation/hcl-report.js'
import { isVtpm } from '../attestation/providers/vtpm.js'
import { DEFAULT_TCTI } from '../tpm/vtpm.js'

/** An HCL report file (binary, or hex of it) rather than a bare SNP report. */
function asHclReport(input: Buffer): Buffer | undefined {
  if (input.length >= 4 && input.readUInt32LE(0) === HCL_SIGNATURE) return input
  const text = input.toString('latin1').replace(/\s+/g, '')
  if (/^48434c41([0-9a-fA-F]{2})*$/i.test(text)) return Buffer.from(text, 'hex')
  return undefined
}

/** What `encfs report` shows of an HCL report: its framing, whether the binding holds, the vTPM keys, the user data and the SNP report. */
function describeHcl(h: HclReport): Record<string, unknown> {
  const kinds: Record<number, string> = { 1: 'sha256', 2: 'sha384', 3: 'sha512' }
  return {
    hcl: { ...h.header, reportType: 'SEV-SNP', hashType: kinds[h.requestData.hashType], variableDataSize: h.requestData.variableDataSize },
    binding: h.binding,
    keys: Object.fromEntries([h.akPub, h.ekPub].filter((k) => k !== undefined).map((k) => [(k as { kid: string }).kid, { kty: k.kty, e: k.e, n: k.n }])),
    userData: h.userData?.toString('hex') ?? '(none: this paravisor does not put user data in the report)',
    vmConfiguration: h.runtime['vm-configuration'],
    snpReport: parseReport(h.snpReport),
  }
}

/** JSON with bigints as strings and TCB values as their TCBM hex. */
function toJson(report: unknown): string {
  return JSON.stringify(report, (_k, v: unknown) => (typeof v === 'bigint' ? `0x${v.toString(16)}` : v), 2)
}

/** One `name: value` line per field, nested objects flattened, like the Go hex2report tool. */
function toText(report: unknown): string {
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
    'fetch an SEV-SNP attestation report (an HCL report on an Azure confidential VM) and print it (hex like get-snp-report, or decoded), or decode one with --decode',
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
        .option('tpm-tcti', { type: 'string', default: process.env.EncfsTpmTcti || DEFAULT_TCTI, describe: 'the TPM of --attestation vtpm, as a tpm2-tss TCTI (env EncfsTpmTcti)' })
        .option('format', { type: 'string', choices: ['hex', 'json', 'text'] as const, describe: 'output (default hex when fetching, text when decoding)' })
        .option('decode', { type: 'string', describe: 'decode this report file, an SNP or an HCL report (hex or binary; - for stdin), instead of fetching' }),
    async (args) => {
      const logger = commandLogger(args)
      let raw: Buffer
      let hcl: Buffer | undefined
      if (args.decode !== undefined) {
        const input = await readInput(args.decode)
        hcl = asHclReport(input)
        raw = hcl ?? decodeReportInput(input)
      } else {
        if (!isHexOfAtMost(args['report-data'], 64)) throw new AttestationError('ATTEST_REPORT_DATA_INVALID', '--report-data must be hex of at most 64 bytes')
        const hostData = args['host-data']
        if (hostData !== undefined && (!isHexOfAtMost(hostData, 32) || args.attestation !== 'simulated')) {
          throw new AttestationError(
            'ATTEST_REPORT_DATA_INVALID',
            '--host-data must be hex of at most 32 bytes, with --attestation simulated (a real chip takes HOST_DATA from the launch)',
          )
        }
        const simulatedHostData = hostData === undefined ? undefined : Buffer.concat([Buffer.from(hostData, 'hex'), Buffer.alloc(32)]).subarray(0, 32)
        const provider = await selectProvider(args.attestation, {
          logger,
          tpmTcti: args['tpm-tcti'],
          simulated: { stateDir: args['simulated-state'], hostData: simulatedHostData },
        })
        const data = Buffer.from(args['report-data'], 'hex')
        // On a confidential VM the report data becomes the HCL report's user data.
        if (isVtpm(provider)) {
          const fresh = await provider.hclReport(data)
          hcl = fresh.raw.subarray(0, fresh.hcl.header.reportSize)
          raw = hcl
        } else raw = await provider.getReport(data)
      }
      const format = args.format ?? (args.decode !== undefined ? 'text' : 'hex')
      const decoded = () => (hcl ? describeHcl(parseHclReport(hcl, args.decode ?? 'the HCL report')) : parseReport(raw))
      if (format === 'hex') process.stdout.write(`${raw.toString('hex')}\n`)
      else process.stdout.write(format === 'json' ? `${toJson(decoded())}\n` : toText(decoded()))
    },
  )
}
