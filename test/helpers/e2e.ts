// Everything an end-to-end test file sets up, in one place: Azurite (started on first use), images
// made by cryptsetup, temporary directories, the emulators, remotefs processes (started, waited
// for, stopped). All of it is undone after the file's tests, the last made first, whatever failed.
import type { TestFn } from 'ava'
import { mkdir, rm } from 'node:fs/promises'
import { spawn, type ChildProcess } from 'node:child_process'
import path from 'node:path'
import { startAzurite, uploadFile, type Azurite, type UploadOptions } from './azurite.js'
import { makeEncryptedImage, type ImageOptions, type TestImage } from './images.js'
import { sidecarArgs, startSidecar, stopSidecar, waitReady, type FsConfig, type Sidecar, type SidecarOptions } from './remotefs.js'
import { startSkrStack, type SkrStack } from './skr-stack.js'
import { startSwtpmVtpm, type SwtpmVtpm } from './swtpm.js'
import { simulatedProvider } from '../../src/attestation/providers/simulated.js'
import { startImdsEmulator, type ImdsEmulator } from '../../src/emulators/imds/server.js'
import { tempDir } from './temp.js'
import { chooseUnlock, probeCapabilities, type Choice } from '../../src/mount/capabilities.js'

export { blobSas, freePort, type Azurite } from './azurite.js'
export type { TestImage } from './images.js'
export * from './remotefs.js'

/** What a user sees of a remotefs that ended on its own (a failed start-up). */
export interface Ended {
  code: number | null
  output: string
  log: string
  runtimeDir: string
}

/**
 * What `--unlock auto` chooses on this machine, and why: kernel where device-mapper and cryptsetup
 * are there, userspace elsewhere. Tests expect this instead of assuming either.
 */
export async function autoUnlock(): Promise<Choice<'kernel' | 'userspace'>> {
  return chooseUnlock('auto', await probeCapabilities())
}

/** A program a test started (an entry point script, a sidecar in another role): its output so far, and how it ended. */
export interface Started {
  child: ChildProcess
  exited: Promise<number | null>
  /** stdout and stderr so far, interleaved. */
  output(): string
  /** SIGTERM (or `signal`), then the exit code; SIGKILL after 30 s. */
  stop(signal?: NodeJS.Signals): Promise<number | null>
}

/** `text` as a regular expression that matches it literally. */
export const literally = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')

export class E2eFixture {
  private readonly undos: (() => Promise<unknown>)[] = []
  private az?: Promise<Azurite>

  /** Registers the cleanup with `test` (ava's test function of the file). */
  constructor(test: TestFn) {
    test.after.always(() => this.cleanup())
  }

  /** Runs `undo` after the file's tests (the last deferred first); its failure is ignored. */
  defer(undo: () => unknown): void {
    this.undos.push(async () => undo())
  }

  /** Azurite, started by the first caller; stopped after everything else. */
  azurite(): Promise<Azurite> {
    this.az ??= startAzurite()
    return this.az
  }

  async upload(file: string, o?: UploadOptions): Promise<{ url: string; sasUrl: string }> {
    return uploadFile(await this.azurite(), file, o)
  }

  async image(o?: ImageOptions): Promise<TestImage> {
    const img = await makeEncryptedImage(o)
    this.defer(() => img.cleanup())
    return img
  }

  async tempDir(prefix = 'encfs-e2e-'): Promise<string> {
    const tmp = await tempDir(prefix)
    this.defer(() => tmp.cleanup())
    return tmp.dir
  }

  /** A temporary directory with an empty `mnt` folder to put mount points in (their parent must exist). */
  async workspace(): Promise<{ dir: string; parent: string }> {
    const dir = await this.tempDir()
    const parent = path.join(dir, 'mnt')
    await mkdir(parent)
    return { dir, parent }
  }

  /** Runs `cmd` as a user would (`env` on top of this process's); stopped after the file's tests if it still runs. */
  start(cmd: string, args: string[], o: { env?: Record<string, string>; cwd?: string } = {}): Started {
    const child = spawn(cmd, args, { env: { ...process.env, ...o.env }, cwd: o.cwd, stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    const collect = (d: Buffer) => {
      out += d.toString()
    }
    child.stdout.on('data', collect)
    child.stderr.on('data', collect)
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
    const stop = async (signal: NodeJS.Signals = 'SIGTERM') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal)
      const timer = setTimeout(() => child.kill('SIGKILL'), 30_000)
      const code = await exited
      clearTimeout(timer)
      return code
    }
    this.defer(() => stop())
    return { child, exited, output: () => out, stop }
  }

  /** The IMDS emulator (managed identity tokens) of `stack`'s token authority; stopped after the file. */
  async imds(stack: SkrStack): Promise<ImdsEmulator> {
    const imds = await startImdsEmulator(stack.authority)
    this.defer(() => imds.stop())
    return imds
  }

  /** Simulated SNP + MAA + Key Vault emulators. */
  async skrStack(o?: { managedHsm?: boolean }): Promise<SkrStack> {
    const s = await startSkrStack(o)
    this.defer(() => s.stop())
    return s
  }

  /**
   * swtpm provisioned as an Azure confidential VM's vTPM, its paravisor making HCL reports with
   * `stack`'s simulated chip (no HOST_DATA, as on a CVM); stopped after the file's tests.
   */
  async vtpm(stack: SkrStack): Promise<SwtpmVtpm> {
    const v = await startSwtpmVtpm(simulatedProvider({ stateDir: path.join(stack.dir, 'snp') }))
    this.defer(() => v.stop())
    return v
  }

  /** remotefs started with `config` (filesystems, or EncfsSideCarArgs as given); stopped, its log and runtime directory removed after the file. */
  async sidecar(config: FsConfig[] | string | undefined, o: SidecarOptions = {}): Promise<Sidecar> {
    const sidecar = await startSidecar(typeof config === 'object' ? sidecarArgs(config) : config, o)
    this.defer(async () => {
      await stopSidecar(sidecar)
      await rm(sidecar.logFile, { force: true })
      // remotefs removes its runtime directory when it stops cleanly; not after a failed start or a SIGKILL.
      await rm(sidecar.runtimeDir, { recursive: true, force: true })
    })
    return sidecar
  }

  /** remotefs mounting `filesystems`, once every mount point is ready (within `readyMs`, default 90 s). */
  async mount(filesystems: FsConfig[], o: SidecarOptions & { readyMs?: number } = {}): Promise<Sidecar> {
    const sidecar = await this.sidecar(filesystems, o)
    await waitReady(
      sidecar,
      filesystems.map((f) => f.mount_point),
      o.readyMs,
    )
    return sidecar
  }

  /** remotefs run until it ends on its own (it is expected to fail); killed if it has not after two minutes. */
  async runToEnd(config: FsConfig[] | string | undefined, o: SidecarOptions = {}): Promise<Ended> {
    const sidecar = await this.sidecar(config, o)
    const timer = setTimeout(() => sidecar.child.kill('SIGKILL'), 120_000)
    const code = await sidecar.exited
    clearTimeout(timer)
    return { code, output: sidecar.output(), log: await sidecar.log(), runtimeDir: sidecar.runtimeDir }
  }

  private async cleanup(): Promise<void> {
    for (const undo of this.undos.reverse()) await undo().catch(() => {})
    // Last: a read-write filesystem flushes to storage while it is stopped.
    await (await this.az?.catch(() => undefined))?.stop()
  }
}
