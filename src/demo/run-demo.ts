import { spawn } from 'node:child_process'
import { mkdtemp, mkdir, rm, readFile, lstat, readdir, stat, access } from 'node:fs/promises'
import { setTimeout as sleep } from 'node:timers/promises'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { EncfsError } from '../errors.js'
import { hasProgram } from '../mount/capabilities.js'
import { freePort, startAzurite, uploadFile } from './azurite.js'
import { makeEncryptedImage } from './test-image.js'

export interface DemoOptions {
  once: boolean
  keep: boolean
  loglevel: string
  out?: NodeJS.WritableStream
}

const SAMPLE: Record<string, string> = {
  'hello.txt': 'Hello from an encrypted filesystem, streamed from blob storage and mounted by encfs.\n',
  'docs/how-it-works.txt': 'Blob (LUKS2 ciphertext) -> block cache -> LUKS2 unlock -> FUSE file -> loop -> ext4 -> symlink.\n',
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
  if (!(await access('/dev/fuse').then(() => true, () => false))) throw new EncfsError('DEMO_NO_FUSE', '/dev/fuse is missing: load the fuse module (modprobe fuse) or run in a container with --device /dev/fuse')
  for (const [cmd, pkg] of [['cryptsetup', 'cryptsetup-bin'], ['mkfs.ext4', 'e2fsprogs'], ['losetup', 'util-linux']] as const) {
    if (!(await hasProgram(cmd))) throw new EncfsError('DEMO_MISSING_TOOL', `${cmd} is missing: apt-get install ${pkg} (npm run demo installs it)`)
  }
}

/**
 * The local stack in one command: Azurite on loopback, an encrypted image made on the fly and
 * uploaded, and remotefs started as the sidecar would be, mounting it for real.
 */
export async function runDemo(o: DemoOptions): Promise<void> {
  const out = o.out ?? process.stdout
  const t0 = Date.now()
  let n = 0
  const step = (text: string) => out.write(`[${String(++n).padStart(2)}] ${((Date.now() - t0) / 1000).toFixed(1).padStart(5)}s  ${text}\n`)
  await preflight()
  const work = await mkdtemp(path.join(os.tmpdir(), 'encfs-demo-'))
  const cleanups: (() => Promise<void>)[] = []
  let remotefs: ReturnType<typeof spawn> | undefined
  try {
    step(`work directory ${work}`)
    const image = await makeEncryptedImage({ files: SAMPLE, fsSizeMiB: 16, dir: path.join(work, 'image') })
    step(`made an ext4 filesystem with ${Object.keys(SAMPLE).length} files and encrypted it with cryptsetup (LUKS2, aes-xts-plain64, 4096-byte sectors)`)
    const az = await startAzurite()
    cleanups.push(() => az.stop())
    step(`Azurite blob storage on ${az.blobEndpoint}`)
    const { sasUrl } = await uploadFile(az, image.image, { container: 'encfs', blob: 'demo.img', kind: 'block' })
    step(`uploaded the image as a block blob: ${sasUrl.split('?')[0]} (read through a SAS)`)

    const parent = path.join(work, 'mnt', 'remote')
    await mkdir(parent, { recursive: true })
    const mountPoint = path.join(parent, 'share')
    const config = { azure_filesystems: [{ mount_point: mountPoint, azure_url: sasUrl, raw_key: image.key.toString('hex') }] }
    const logFile = path.join(work, 'remotefs.log')
    const runtimeDir = path.join(work, 'runtime')
    const apiPort = await freePort()
    remotefs = spawn(process.execPath, ['--enable-source-maps', REMOTEFS_JS, '-loglevel', o.loglevel === 'warning' ? 'info' : o.loglevel, '-logfile', logFile, '--runtime-dir', runtimeDir, '--allow-raw-key', '-port', String(apiPort)], {
      env: { ...process.env, EncfsSideCarArgs: Buffer.from(JSON.stringify(config)).toString('base64') },
      stdio: ['ignore', 'inherit', 'inherit'],
    })
    const exited = new Promise<number | null>((resolve) => remotefs!.on('exit', (code) => resolve(code)))
    let exitCode: number | null | undefined
    void exited.then((c) => { exitCode = c })
    step('started remotefs with EncfsSideCarArgs (raw_key test mode; secure key release replaces it in production)')
    for (;;) {
      const link = await lstat(mountPoint).then((s) => s.isSymbolicLink(), () => false)
      if (link && (await readFile(logFile, 'utf8').catch(() => '')).includes('"msg":"ready:')) break
      if (exitCode !== undefined) throw new EncfsError('DEMO_REMOTEFS_FAILED', `remotefs exited with ${exitCode}; its log: ${logFile}`)
      await sleep(100)
    }
    const log = await readFile(logFile, 'utf8')
    const choice = log.split('\n').flatMap((line) => {
      try {
        const entry = JSON.parse(line) as { unlock?: string; unlockReason?: string; mounter?: string }
        return entry.unlockReason ? [entry] : []
      } catch {
        return []
      }
    })[0]
    step(`mounted: ${mountPoint} -> .filesystem-0${choice ? ` (unlock ${choice.unlock}, because ${choice.unlockReason}; mounted with ${choice.mounter})` : ''}`)
    const status = await fetch(`http://127.0.0.1:${apiPort}/status`).then(async (r) => (await r.json()) as { message: string; filesystems: { state: string }[] }, () => undefined)
    step(`API on http://localhost:${apiPort}: GET /status -> ${status ? `"${status.message}", filesystem 0 ${status.filesystems[0]?.state}` : 'no answer'}`)
    out.write('\n')
    for (const rel of await walk(mountPoint)) {
      const file = path.join(mountPoint, rel)
      out.write(`--- ${file} (${(await stat(file)).size} bytes)\n${await readFile(file, 'utf8')}`)
    }
    out.write('\n')
    if (!o.once) {
      out.write(`Serving ${mountPoint} until Ctrl-C. Log: ${logFile}\n`)
      await new Promise<void>((resolve) => {
        process.once('SIGINT', resolve)
        process.once('SIGTERM', resolve)
        void exited.then(() => resolve())
      })
    }
    if (exitCode === undefined) {
      remotefs.kill('SIGTERM')
      const code = await exited
      step(`remotefs stopped (exit ${code}): symlink removed, ext4 unmounted, loop detached, FUSE unmounted`)
      if (code !== 0) throw new EncfsError('DEMO_REMOTEFS_FAILED', `remotefs exited with ${code} on SIGTERM; its log: ${logFile}`)
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
