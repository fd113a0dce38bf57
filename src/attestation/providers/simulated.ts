import { createHash, createPrivateKey, randomBytes, sign, type KeyObject } from 'node:crypto'
import { mkdir, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { silentLogger, type Logger } from '../../log/logger.js'
import { AttestationError } from '../errors.js'
import { runCommand } from '../../process/run.js'
import { REPORT_SIZE, SIGNED_LENGTH } from '../report.js'
import type { ThimCerts } from '../thim.js'
import { reportDataBlock, type ReportProvider } from './provider.js'

/** Milan-like TCB: bl 3, tee 0, snp 8, ucode 0x73 (the values of the Go test report). */
export const SIMULATED_TCB = 0x7308000000000003n

export function defaultSimulatedStateDir(env: NodeJS.ProcessEnv = process.env): string {
  return path.join(env.XDG_STATE_HOME || path.join(os.homedir(), '.local', 'state'), 'encfs', 'simulated-snp')
}

interface State {
  vcekKey: KeyObject
  vcekPem: string
  askPem: string
  arkPem: string
  chipId: Buffer
  measurement: Buffer
}

const PSS = ['-sigopt', 'rsa_padding_mode:pss', '-sigopt', 'rsa_pss_saltlen:48', '-sha384']

async function openssl(args: string[], cwd: string): Promise<void> {
  await runCommand('openssl', args, { cwd }).catch((err: Error) => {
    throw new AttestationError('ATTEST_SIMULATOR_FAILED', `making the simulated SNP chain: ${err.message}`, { cause: err })
  })
}

/**
 * ARK (RSA-4096, self-signed) -> ASK (RSA-4096) -> VCEK (EC P-384), RSASSA-PSS/SHA-384 like AMD's,
 * made once with the openssl command (node:crypto cannot issue certificates) and kept in
 * `dir`. Built in a temporary directory and renamed into place, so two processes never see half.
 */
async function createState(dir: string): Promise<void> {
  await mkdir(path.dirname(dir), { recursive: true })
  const tmp = await mkdtemp(`${dir}.tmp-`)
  try {
    const ca = 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n'
    await writeFile(path.join(tmp, 'ca.ext'), ca)
    await writeFile(path.join(tmp, 'leaf.ext'), 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n')
    const subj = (cn: string) => `/CN=${cn}/O=encfs simulated SEV-SNP (not AMD)/OU=Engineering`
    await openssl(
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:4096',
        '-nodes',
        '-keyout',
        'ark.key',
        '-out',
        'ark.pem',
        '-subj',
        subj('ARK-Milan'),
        '-days',
        '9125',
        ...PSS,
        '-addext',
        'basicConstraints=critical,CA:TRUE',
        '-addext',
        'keyUsage=critical,keyCertSign,cRLSign',
      ],
      tmp,
    )
    await openssl(['req', '-new', '-newkey', 'rsa:4096', '-nodes', '-keyout', 'ask.key', '-out', 'ask.csr', '-subj', subj('SEV-Milan')], tmp)
    await openssl(
      ['x509', '-req', '-in', 'ask.csr', '-CA', 'ark.pem', '-CAkey', 'ark.key', '-set_serial', '1', '-days', '9125', ...PSS, '-extfile', 'ca.ext', '-out', 'ask.pem'],
      tmp,
    )
    await openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:secp384r1', '-out', 'vcek.key'], tmp)
    await openssl(['req', '-new', '-key', 'vcek.key', '-out', 'vcek.csr', '-subj', subj('SEV-VCEK')], tmp)
    await openssl(
      ['x509', '-req', '-in', 'vcek.csr', '-CA', 'ask.pem', '-CAkey', 'ask.key', '-set_serial', '0', '-days', '2555', ...PSS, '-extfile', 'leaf.ext', '-out', 'vcek.pem'],
      tmp,
    )
    await writeFile(path.join(tmp, 'chip-id'), randomBytes(64).toString('hex'))
    await writeFile(
      path.join(tmp, 'measurement'),
      createHash('sha384')
        .update(`encfs simulated UVM ${randomBytes(8).toString('hex')}`)
        .digest('hex'),
    )
    for (const f of ['ark.key', 'ask.key', 'ask.csr', 'vcek.csr', 'ca.ext', 'leaf.ext']) await rm(path.join(tmp, f))
    await rename(tmp, dir).catch(async (err: NodeJS.ErrnoException) => {
      // Someone else finished first: theirs stands.
      if (err.code !== 'ENOTEMPTY' && err.code !== 'EEXIST') throw err
    })
  } finally {
    await rm(tmp, { recursive: true, force: true })
  }
}

async function loadState(dir: string): Promise<State> {
  const f = (name: string) => readFile(path.join(dir, name), 'utf8')
  try {
    return {
      vcekKey: createPrivateKey(await f('vcek.key')),
      vcekPem: await f('vcek.pem'),
      askPem: await f('ask.pem'),
      arkPem: await f('ark.pem'),
      chipId: Buffer.from((await f('chip-id')).trim(), 'hex'),
      measurement: Buffer.from((await f('measurement')).trim(), 'hex'),
    }
  } catch (err) {
    throw new AttestationError('ATTEST_SIMULATOR_FAILED', `the simulated SNP state in ${dir} is incomplete (${(err as Error).message}); remove the directory to make a new one`, {
      cause: err,
    })
  }
}

export interface SimulatedOptions {
  stateDir?: string
  /** HOST_DATA: normally SHA-256 of the security policy (policyHostData). */
  hostData?: Buffer
  logger?: Logger
}

export interface SimulatedProvider extends ReportProvider {
  /** The chain as the platform would hand it over (THIM JSON), for MAA and verifiers. */
  thimCerts(): Promise<ThimCerts>
}

/** Builds and signs a report with the simulated VCEK, with the real layout (docs/attestation.md#report-layout). */
function buildReport(state: State, reportData: Buffer, hostData: Buffer): Buffer {
  const r = Buffer.alloc(REPORT_SIZE)
  r.writeUInt32LE(3, 0x00) // version
  r.writeUInt32LE(1, 0x04) // guest_svn
  r.writeBigUInt64LE(0x3001fn, 0x08) // policy: ABI 0.31, SMT allowed, reserved bit 17, no debug
  r[0x10] = 0x01 // family_id
  r[0x20] = 0x02 // image_id
  r.writeUInt32LE(0, 0x30) // vmpl
  r.writeUInt32LE(1, 0x34) // ECDSA P-384 with SHA-384
  r.writeBigUInt64LE(SIMULATED_TCB, 0x38)
  r.writeBigUInt64LE(1n, 0x40) // platform_info: SMT enabled
  reportDataBlock(reportData).copy(r, 0x50)
  state.measurement.copy(r, 0x90)
  hostData.copy(r, 0xc0, 0, 32)
  createHash('sha384').update(state.vcekPem).digest().copy(r, 0xe0) // id_key_digest: stable per state
  randomBytes(32).copy(r, 0x140) // report_id
  r.fill(0xff, 0x160, 0x180) // report_id_ma: no migration agent
  r.writeBigUInt64LE(SIMULATED_TCB, 0x180)
  r[0x188] = 0x19 // CPUID family (Milan)
  r[0x189] = 0x01
  r[0x18a] = 0x01
  state.chipId.copy(r, 0x1a0)
  r.writeBigUInt64LE(SIMULATED_TCB, 0x1e0)
  r.set([0x04, 0x34, 0x01], 0x1e8) // current build/minor/major
  r.set([0x04, 0x34, 0x01], 0x1ec)
  r.writeBigUInt64LE(SIMULATED_TCB, 0x1f0)
  const sig = sign('sha384', r.subarray(0, SIGNED_LENGTH), { key: state.vcekKey, dsaEncoding: 'ieee-p1363' })
  Buffer.from(sig.subarray(0, 48)).reverse().copy(r, 0x2a0)
  Buffer.from(sig.subarray(48, 96))
    .reverse()
    .copy(r, 0x2a0 + 72)
  return r
}

/** Opt-in reports for the local stack and tests: real layout, signed by a local chain. Never a fallback. */
export function simulatedProvider(o: SimulatedOptions = {}): SimulatedProvider {
  const dir = o.stateDir ?? defaultSimulatedStateDir()
  const logger = o.logger ?? silentLogger
  let state: Promise<State> | undefined
  const ready = (): Promise<State> => {
    state ??= (async () => {
      const exists = await readFile(path.join(dir, 'vcek.pem')).then(
        () => true,
        () => false,
      )
      if (!exists) {
        logger.warn({ dir }, 'creating a simulated SEV-SNP chip (ARK, ASK, VCEK); this takes a few seconds once')
        await createState(dir)
      }
      return loadState(dir)
    })()
    state.catch(() => {
      state = undefined
    })
    return state
  }
  return {
    name: 'simulated',
    location: dir,
    async getReport(reportData: Buffer): Promise<Buffer> {
      const s = await ready()
      logger.warn({ stateDir: dir }, 'SIMULATED SEV-SNP report: signed by a local test chain, not by AMD hardware; no real verifier accepts it')
      return buildReport(s, reportData, o.hostData ?? Buffer.alloc(32))
    },
    async thimCerts(): Promise<ThimCerts> {
      const s = await ready()
      return { vcekCert: s.vcekPem, certificateChain: s.askPem + s.arkPem, tcbm: SIMULATED_TCB.toString(16).padStart(16, '0'), cacheControl: '86400' }
    },
  }
}
