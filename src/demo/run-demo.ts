import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtemp, mkdir, rm, readFile, lstat, readdir, stat, access, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { EncfsError } from '../errors/encfs-error.js'
import { waitFor } from '../retry/retry.js'
import { hasProgram } from '../mount/capabilities.js'
import { freePort, startAzurite, uploadFile } from './azurite.js'
import { randomBytes } from 'node:crypto'
import { policyHostData } from '../attestation/report-data.js'
import { simulatedProvider } from '../attestation/providers/simulated.js'
import { parsePemChain } from '../attestation/cert-chain.js'
import { thimChainPem } from '../attestation/thim.js'
import { TokenAuthority } from '../emulators/token-authority.js'
import { startMaaEmulator } from '../emulators/maa/server.js'
import { startAkvEmulator } from '../emulators/akv/server.js'
import { startImdsEmulator } from '../emulators/imds/server.js'
import { importKey, releasePolicy } from '../skr/import-key.js'
import { pack } from '../pack/pack.js'
import { formatImageTree } from '../verity/image-tree.js'
import { makeContextDir, podEnvironment, showRefusedRelease, type PodContext } from './refused-release.js'

export interface DemoOptions {
  once: boolean
  keep: boolean
  loglevel: string
  out?: NodeJS.WritableStream
}

const SAMPLE: Record<string, string> = {
  'hello.txt': 'Hello from an encrypted filesystem, streamed from blob storage and mounted by encfs.\n',
  'docs/how-it-works.txt': 'Blob (LUKS2 ciphertext) -> dm-verity check -> block cache -> LUKS2 unlock -> FUSE file -> loop -> ext4 -> symlink.\n',
  'data/numbers.csv': 'n,square\n1,1\n2,4\n3,9\n4,16\n',
}

const REMOTEFS_JS = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../bin/remotefs.js')

async function walk(dir: string, rel = ''): Promise<string[]> {
  const out: string[] = []
  for (const e of (await readdir(path.join(dir, rel), { withFileTypes: true })).sort((a, b) => a.name.localeCompare(b.name))) {
    const r = rel ? `${rel}/${e.name}` : e.name
    if (e.name === 'lost+found') continue
    if (e.isDirectory()) out.push(...(await walk(dir, r)))
    else out.push(r)
  }
  return out
}

async function preflight(): Promise<void> {
  if (process.getuid?.() !== 0) throw new EncfsError('DEMO_NOT_ROOT', 'the demo mounts filesystems: run it as root (sudo npm run demo)')
  if (
    !(await access('/dev/fuse').then(
      () => true,
      () => false,
    ))
  )
    throw new EncfsError('DEMO_NO_FUSE', '/dev/fuse is missing: load the fuse module (modprobe fuse) or run in a container with --device /dev/fuse')
  for (const [cmd, pkg] of [
    ['mkfs.ext4', 'e2fsprogs'],
    ['losetup', 'util-linux'],
    ['openssl', 'openssl'],
  ] as const) {
    if (!(await hasProgram(cmd))) throw new EncfsError('DEMO_MISSING_TOOL', `${cmd} is missing: apt-get install ${pkg} (npm run demo installs it)`)
  }
}

type Step = (text: string) => void
type Cleanups = (() => Promise<void>)[]

/** The pod's security policy; its digest is the HOST_DATA the simulated chip reports and the key's policy demands. */
async function simulatedChip(work: string, step: Step) {
  const policyBase64 = Buffer.from('package policy\n\napi_version := "0.10.0"\nframework_version := "0.2.3"\n# encfs demo policy\n').toString('base64')
  const hostData = policyHostData(policyBase64)
  const snpState = path.join(work, 'simulated-snp')
  const certs = await simulatedProvider({ stateDir: snpState, hostData }).thimCerts()
  step(`simulated SEV-SNP chip (ARK -> ASK -> VCEK) in ${snpState}; policy digest ${hostData.toString('hex').slice(0, 16)}...`)
  return { policyBase64, hostData, snpState, certs }
}

type Chip = Awaited<ReturnType<typeof simulatedChip>>

async function startEmulators(work: string, chip: Chip, cleanups: Cleanups, step: Step) {
  const authority = await TokenAuthority.create()
  const maa = await startMaaEmulator({ trustedArks: parsePemChain(thimChainPem(chip.certs)).slice(2), expectedHostData: chip.hostData })
  cleanups.push(() => maa.stop())
  const akv = await startAkvEmulator({ authority, maaCas: [maa.caPem] })
  cleanups.push(() => akv.stop())
  const imds = await startImdsEmulator(authority)
  cleanups.push(() => imds.stop())
  const caFile = path.join(work, 'emulator-ca.pem')
  await writeFile(caFile, maa.caPem + akv.caPem)
  step(`emulators on loopback: MAA https://${maa.endpoint}, Key Vault https://${akv.endpoint}, IMDS ${imds.url}`)
  return { authority, maa, akv, imds, caFile }
}

type Emulators = Awaited<ReturnType<typeof startEmulators>>

/** A fresh key, imported into the Key Vault emulator with a release policy that names the pod's policy digest. */
async function importDemoKey(e: Emulators, chip: Chip, step: Step): Promise<Buffer> {
  const key = randomBytes(32)
  const operator = (await e.authority.issue(e.akv.audience, 'demo-operator')).token
  await importKey({
    akvEndpoint: e.akv.endpoint,
    name: 'encfs-demo-key',
    key: { kty: 'oct-HSM', k: key.toString('base64url'), key_size: 256 },
    bearer: operator,
    ca: [e.akv.caPem],
    policy: releasePolicy(e.maa.endpoint, [
      [
        { claim: 'x-ms-sevsnpvm-hostdata', equals: chip.hostData.toString('hex') },
        { claim: 'x-ms-sevsnpvm-is-debuggable', equals: 'false' },
      ],
    ]),
  })
  step('made a 256-bit key and imported it into the Key Vault emulator, releasable only to a pod with this policy digest')
  return key
}

/** The sample files packed with `key` (which is zeroed), a dm-verity tree appended, the image uploaded to Azurite. */
async function packAndUpload(work: string, key: Buffer, cleanups: Cleanups, step: Step) {
  const files = path.join(work, 'files')
  for (const [rel, content] of Object.entries(SAMPLE)) {
    await mkdir(path.dirname(path.join(files, rel)), { recursive: true })
    await writeFile(path.join(files, rel), content)
  }
  const imagePath = path.join(work, 'demo.img')
  await pack({ from: files, out: imagePath, key, iterations: 1000, size: 16 * 1024 * 1024 })
  key.fill(0)
  step(`packed ${Object.keys(SAMPLE).length} files into an encrypted image with encfs pack (LUKS2, aes-xts-plain64, 4096-byte sectors)`)
  // Tamper evidence: the tree covers the ciphertext as stored; its root hash goes into the configuration.
  const tree = await formatImageTree(imagePath)
  step(`appended a dm-verity hash tree (encfs pack --verity); root hash ${tree.rootHash} pinned in the configuration`)
  const az = await startAzurite()
  cleanups.push(() => az.stop())
  const { sasUrl } = await uploadFile(az, imagePath, { container: 'encfs', blob: 'demo.img', kind: 'block' })
  step(`Azurite blob storage on ${az.blobEndpoint}; uploaded the image: ${sasUrl.split('?')[0]}`)
  return { sasUrl, tree }
}

interface RunningRemotefs {
  child: ChildProcess
  /** The exit code once it has exited. */
  exitCode(): number | null | undefined
  exited: Promise<number | null>
  mountPoint: string
  logFile: string
  apiPort: number
}

/** remotefs as the sidecar runs: the configuration in EncfsSideCarArgs, the emulators' CA, IMDS and the pod's policy in the environment. */
async function startDemoRemotefs(
  work: string,
  o: DemoOptions,
  chip: Chip,
  e: Emulators,
  pod: PodContext,
  image: Awaited<ReturnType<typeof packAndUpload>>,
  step: Step,
): Promise<RunningRemotefs> {
  const parent = path.join(work, 'mnt', 'remote')
  await mkdir(parent, { recursive: true })
  const mountPoint = path.join(parent, 'share')
  const config = {
    azure_info: { identity: { client_id: 'encfs-demo-pod' } },
    azure_filesystems: [
      {
        mount_point: mountPoint,
        azure_url: image.sasUrl,
        key: { kid: 'encfs-demo-key', kty: 'oct-HSM', authority: { endpoint: e.maa.endpoint }, akv: { endpoint: e.akv.endpoint } },
        verity: { root_hash: image.tree.rootHash, hash_offset: image.tree.hashOffset },
      },
    ],
  }
  const logFile = path.join(work, 'remotefs.log')
  const runtimeDir = path.join(work, 'runtime')
  const apiPort = await freePort()
  const child = spawn(
    process.execPath,
    [
      '--enable-source-maps',
      REMOTEFS_JS,
      '-loglevel',
      o.loglevel === 'warning' ? 'info' : o.loglevel,
      '-logfile',
      logFile,
      '--runtime-dir',
      runtimeDir,
      // The API is off unless asked for (as in the Go encfs image): the demo asks, on a free port.
      '-port',
      String(apiPort),
      '--attestation',
      'simulated',
      '--simulated-state',
      chip.snpState,
    ],
    {
      env: { ...podEnvironment(pod), EncfsSideCarArgs: Buffer.from(JSON.stringify(config)).toString('base64') },
      stdio: ['ignore', 'inherit', 'inherit'],
    },
  )
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
  let exitCode: number | null | undefined
  void exited.then((c) => {
    exitCode = c
  })
  step('started remotefs with EncfsSideCarArgs: report -> MAA token -> key release (managed identity via IMDS) -> unlock -> mount')
  await waitFor(
    async () => {
      const link = await lstat(mountPoint).then(
        (st) => st.isSymbolicLink(),
        () => false,
      )
      if (link && (await readFile(logFile, 'utf8').catch(() => '')).includes('"msg":"ready:')) return true
      if (exitCode !== undefined) throw new EncfsError('DEMO_REMOTEFS_FAILED', `remotefs exited with ${exitCode}; its log: ${logFile}`)
      return false
    },
    { intervalMs: 100 },
  )
  return { child, exitCode: () => exitCode, exited, mountPoint, logFile, apiPort }
}

/** What remotefs chose and did, its /status, and the files of the mounted filesystem. */
async function showMount(r: RunningRemotefs, e: Emulators, out: NodeJS.WritableStream, step: Step): Promise<void> {
  const log = await readFile(r.logFile, 'utf8')
  const choice = log.split('\n').flatMap((line) => {
    try {
      const entry = JSON.parse(line) as { unlock?: string; unlockReason?: string; mounter?: string }
      return entry.unlockReason ? [entry] : []
    } catch {
      return []
    }
  })[0]
  step(
    `key released by secure key release; mounted: ${r.mountPoint} -> .filesystem-0${choice ? ` (unlock ${choice.unlock}, because ${choice.unlockReason}; mounted with ${choice.mounter})` : ''}`,
  )
  const status = await fetch(`http://127.0.0.1:${r.apiPort}/status`).then(
    async (res) => (await res.json()) as { message: string; filesystems: { state: string; verity?: { verifiedBlocks: number; failedReads: number } }[] },
    () => undefined,
  )
  const verity = status?.filesystems[0]?.verity
  step(
    `API on http://localhost:${r.apiPort}: GET /status -> ${status ? `"${status.message}", filesystem 0 ${status.filesystems[0]?.state}${verity ? `, ${verity.verifiedBlocks} blocks verified against the root hash, ${verity.failedReads} failed` : ''}` : 'no answer'}`,
  )
  out.write(
    `    try: curl -s localhost:${r.apiPort}/status  |  curl -s -X POST localhost:${r.apiPort}/attest/maa -d '{"maa_endpoint":"${e.maa.endpoint}","runtime_data":"e30="}'\n`,
  )
  out.write('\n')
  for (const rel of await walk(r.mountPoint)) {
    const file = path.join(r.mountPoint, rel)
    out.write(`--- ${file} (${(await stat(file)).size} bytes)\n${await readFile(file, 'utf8')}`)
  }
  out.write('\n')
}

/**
 * The local stack in one command: a simulated SNP chip, the MAA / Key Vault / IMDS emulators,
 * Azurite, a key imported with a release policy, an image packed with that key, and remotefs
 * started as the sidecar would be, releasing the key by SKR and mounting the image for real.
 */
export async function runDemo(o: DemoOptions): Promise<void> {
  const out = o.out ?? process.stdout
  const t0 = Date.now()
  let n = 0
  const step: Step = (text) => out.write(`[${String(++n).padStart(2)}] ${((Date.now() - t0) / 1000).toFixed(1).padStart(5)}s  ${text}\n`)
  await preflight()
  const work = await mkdtemp(path.join(os.tmpdir(), 'encfs-demo-'))
  const cleanups: Cleanups = []
  let remotefs: ChildProcess | undefined
  try {
    step(`work directory ${work}`)
    const chip = await simulatedChip(work, step)
    const emulators = await startEmulators(work, chip, cleanups, step)
    const key = await importDemoKey(emulators, chip, step)
    const image = await packAndUpload(work, key, cleanups, step)
    const pod = {
      caFile: emulators.caFile,
      imdsUrl: emulators.imds.url,
      vaultHost: emulators.akv.endpoint,
      policyBase64: chip.policyBase64,
      contextDir: await makeContextDir(work),
    }
    const r = await startDemoRemotefs(work, o, chip, emulators, pod, image, step)
    remotefs = r.child
    await showMount(r, emulators, out, step)
    await showRefusedRelease({
      pod,
      maa: emulators.maa.endpoint,
      akv: emulators.akv.endpoint,
      akvAudience: emulators.akv.audience,
      authority: emulators.authority,
      ca: [emulators.akv.caPem],
      snpState: chip.snpState,
      out,
      step,
    })
    if (!o.once) {
      out.write(`Serving ${r.mountPoint} until Ctrl-C. Log: ${r.logFile}\n`)
      await new Promise<void>((resolve) => {
        process.once('SIGINT', resolve)
        process.once('SIGTERM', resolve)
        void r.exited.then(() => resolve())
      })
    }
    if (r.exitCode() === undefined) {
      r.child.kill('SIGTERM')
      const code = await r.exited
      step(`remotefs stopped (exit ${code}): symlink removed, ext4 unmounted, loop detached, FUSE unmounted`)
      if (code !== 0) throw new EncfsError('DEMO_REMOTEFS_FAILED', `remotefs exited with ${code} on SIGTERM; its log: ${r.logFile}`)
    }
  } finally {
    if (remotefs && remotefs.exitCode === null && remotefs.signalCode === null) {
      remotefs.kill('SIGTERM')
      await new Promise((resolve) => remotefs!.once('exit', resolve))
    }
    for (const c of cleanups.reverse()) await c().catch(() => {})
    if (o.keep) out.write(`kept ${work}\n`)
    else await rm(work, { recursive: true, force: true })
    step('cleaned up')
  }
}
