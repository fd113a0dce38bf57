// A software TPM 2.0 (swtpm) provisioned as an Azure confidential VM's vTPM: an attestation key
// at 0x81000003 with a certificate from a test "vTPM CA" at NV 0x01C101D0, and the HCL report the
// paravisor keeps at NV 0x01400001 (paravisor.ts). Each instance has its own state directory and
// free loopback ports, and stop() ends the process and removes both.
import { spawn, type ChildProcess } from 'node:child_process'
import { createPublicKey, X509Certificate, type JsonWebKey } from 'node:crypto'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { createServer, connect } from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { runCommand } from '../../src/process/run.js'
import type { SimulatedProvider } from '../../src/attestation/providers/simulated.js'
import { AZURE_VTPM } from '../../src/tpm/vtpm.js'
import { buildHclReport, HCL_NV_SIZE, startParavisor, type Paravisor } from './paravisor.js'

export interface SwtpmVtpm {
  /** The TCTI remotefs and encfs use: the paravisor in front of swtpm. */
  tcti: string
  /** The TCTI of swtpm itself (the paravisor does not see these commands). */
  directTcti: string
  paravisor: Paravisor
  /** The CA that issued the attestation key's certificate (trustedAkCas of the MAA emulator). */
  akCa: X509Certificate
  akPub: JsonWebKey
  dir: string
  stop(): Promise<void>
}

/** The release policy a user writes for a CVM (README, Running on Azure confidential VMs). */
export const CVM_RELEASE_CLAIMS = [
  [
    { claim: 'x-ms-isolation-tee.x-ms-attestation-type', equals: 'sevsnpvm' },
    { claim: 'x-ms-isolation-tee.x-ms-compliance-status', equals: 'azure-compliant-cvm' },
    { claim: 'x-ms-isolation-tee.x-ms-sevsnpvm-is-debuggable', equals: 'false' },
  ],
]

const MISSING = 'swtpm and tpm2-tools are needed for the vTPM tests: apt-get install swtpm swtpm-tools tpm2-tools (npm test installs them)'

/** Two consecutive free loopback ports (the swtpm TCTI's control channel is port + 1). */
async function freePortPair(): Promise<number> {
  const tryBind = (port: number) =>
    new Promise<boolean>((resolve) => {
      const s = createServer()
      s.once('error', () => resolve(false))
      s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)))
    })
  for (let i = 0; i < 50; i++) {
    const port = 20000 + Math.floor(Math.random() * 20000) * 2
    if ((await tryBind(port)) && (await tryBind(port + 1))) return port
  }
  throw new Error('no two consecutive free loopback ports')
}

async function waitListening(port: number, child: ChildProcess, output: () => string): Promise<void> {
  const deadline = Date.now() + 15_000
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`swtpm exited with ${child.exitCode ?? child.signalCode}: ${output()}`)
    const up = await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1')
      s.once('connect', () => {
        s.destroy()
        resolve(true)
      })
      s.once('error', () => resolve(false))
    })
    if (up) return
    await new Promise((r) => setTimeout(r, 50))
  }
  throw new Error(`swtpm did not listen on ${port} within 15 s: ${output()}`)
}

async function tools(tcti: string, cwd: string, args: string[]): Promise<string> {
  const [cmd, ...rest] = args
  const r = await runCommand(cmd!, [`--tcti=${tcti}`, ...rest], { cwd }).catch((err: Error) => {
    throw new Error(`${args.join(' ')}: ${err.message}${/not installed|ENOENT/.test(err.message) ? `. ${MISSING}` : ''}`)
  })
  return r.stdout
}

/** The attestation key, made and persisted as Azure's vTPM has it, with a certificate from a fresh test CA. */
async function provisionAk(tcti: string, dir: string): Promise<{ akPub: JsonWebKey; akCa: X509Certificate }> {
  await tools(tcti, dir, [
    'tpm2_createprimary',
    '-Q',
    '-C',
    'o',
    '-G',
    'rsa2048:rsassa-sha256:null',
    '-a',
    'fixedtpm|fixedparent|sensitivedataorigin|userwithauth|restricted|sign|noda',
    '-c',
    'ak.ctx',
  ])
  await tools(tcti, dir, ['tpm2_evictcontrol', '-Q', '-C', 'o', '-c', 'ak.ctx', `0x${AZURE_VTPM.ak.toString(16)}`])
  // swtpm has no resource manager: what the tools left loaded would fill its three object slots.
  await tools(tcti, dir, ['tpm2_flushcontext', '-t'])
  await tools(tcti, dir, ['tpm2_readpublic', '-Q', '-c', `0x${AZURE_VTPM.ak.toString(16)}`, '-f', 'pem', '-o', 'ak.pem'])
  const openssl = (args: string[]) => runCommand('openssl', args, { cwd: dir })
  await openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-subj', '/CN=encfs test vTPM CA', '-days', '30'])
  await openssl(['req', '-new', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'dummy.key', '-out', 'ak.csr', '-subj', '/CN=encfs test vTPM AK'])
  await openssl([
    'x509',
    '-req',
    '-in',
    'ak.csr',
    '-force_pubkey',
    'ak.pem',
    '-CA',
    'ca.pem',
    '-CAkey',
    'ca.key',
    '-set_serial',
    '1',
    '-days',
    '30',
    '-outform',
    'DER',
    '-out',
    'ak.der',
  ])
  const der = await readFile(path.join(dir, 'ak.der'))
  await tools(tcti, dir, ['tpm2_nvdefine', '-Q', `0x${AZURE_VTPM.akCert.toString(16)}`, '-C', 'o', '-s', String(der.length), '-a', 'ownerread|ownerwrite|authread|authwrite'])
  await tools(tcti, dir, ['tpm2_nvwrite', '-Q', `0x${AZURE_VTPM.akCert.toString(16)}`, '-C', 'o', '-i', 'ak.der'])
  return { akPub: createPublicKey(await readFile(path.join(dir, 'ak.pem'))).export({ format: 'jwk' }), akCa: new X509Certificate(await readFile(path.join(dir, 'ca.pem'))) }
}

/** swtpm started, provisioned as a confidential VM's vTPM over the simulated SNP chip `snp`, and its paravisor. */
export async function startSwtpmVtpm(snp: SimulatedProvider): Promise<SwtpmVtpm> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'encfs-swtpm-'))
  const tpmPort = await freePortPair()
  let out = ''
  const child = spawn(
    'swtpm',
    [
      'socket',
      '--tpm2',
      '--tpmstate',
      `dir=${dir}`,
      '--server',
      `type=tcp,port=${tpmPort},bindaddr=127.0.0.1`,
      '--ctrl',
      `type=tcp,port=${tpmPort + 1},bindaddr=127.0.0.1`,
      '--flags',
      'not-need-init,startup-clear',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  )
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()))
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()))
  const spawned = new Promise<void>((resolve, reject) => child.once('spawn', resolve).once('error', (e) => reject(new Error(`${e.message}. ${MISSING}`))))
  let paravisor: Paravisor | undefined
  const stop = async () => {
    await paravisor?.stop()
    // A swtpm killed by a signal has a signalCode and no exitCode: it will not exit again.
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child.once('exit', r))
      child.kill('SIGTERM')
      await exited
    }
    await rm(dir, { recursive: true, force: true })
  }
  try {
    await spawned
    await waitListening(tpmPort, child, () => out)
    const directTcti = `swtpm:host=127.0.0.1,port=${tpmPort}`
    const { akPub, akCa } = await provisionAk(directTcti, dir)
    const refresh = (userData: Buffer) => buildHclReport(snp, akPub, userData)
    await writeFile(path.join(dir, 'hcl.bin'), await refresh(Buffer.alloc(64)))
    const index = `0x${AZURE_VTPM.hclReport.toString(16)}`
    await tools(directTcti, dir, ['tpm2_nvdefine', '-Q', index, '-C', 'o', '-s', String(HCL_NV_SIZE), '-a', 'ownerread|ownerwrite|authread|authwrite'])
    await tools(directTcti, dir, ['tpm2_nvwrite', '-Q', index, '-C', 'o', '-i', 'hcl.bin'])
    paravisor = await startParavisor({ port: await freePortPair(), tpmPort, refresh })
    return { tcti: `swtpm:host=127.0.0.1,port=${paravisor.port}`, directTcti, paravisor, akCa, akPub, dir, stop }
  } catch (err) {
    await stop()
    throw err
  }
}
