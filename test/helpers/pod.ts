// A confidential pod, as far as this machine can be one, for the image's containers: the local
// stand-ins for what the platform gives a container (the SEV-SNP chip, the security context, the
// identity endpoint, the services' CA), the pod's shared volume (an emptyDir whose mounts
// propagate), and what a user checks on the host after the pod is gone.
import { readFile, writeFile, mkdir, readdir } from 'node:fs/promises'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import path from 'node:path'
import type { E2eFixture } from './e2e.js'
import type { SkrStack } from './skr-stack.js'
import type { ImdsEmulator } from '../../src/emulators/imds/server.js'

const exec = promisify(execFile)

export interface PodPlatform {
  stack: SkrStack
  imds: ImdsEmulator
  /** What every container of the pod gets, as the platform would give it. */
  env: Record<string, string>
  volumes: string[]
}

/**
 * Simulated SNP + MAA / Key Vault / IMDS emulators, and how a container sees them: the chip's
 * state where `--attestation simulated` looks by default, the security policy as the
 * /security-context-* files Confidential ACI mounts, the emulators' CA in NODE_EXTRA_CA_CERTS,
 * and the identity endpoint (IMDS lives at a link-local address no test may use).
 */
export async function podPlatform(e2e: E2eFixture): Promise<PodPlatform> {
  const stack = await e2e.skrStack()
  const imds = await e2e.imds(stack)
  const dir = await e2e.tempDir('encfs-pod-')
  const context = path.join(dir, 'security-context')
  await mkdir(context)
  await writeFile(path.join(context, 'security-policy-base64'), stack.policyBase64)
  await writeFile(path.join(context, 'reference-info-base64'), stack.uvm.referenceInfo)
  await writeFile(path.join(context, 'host-amd-cert-base64'), Buffer.from(JSON.stringify(stack.uvm.hostAmdCertificate)).toString('base64'))
  return {
    stack,
    imds,
    env: { NODE_EXTRA_CA_CERTS: '/etc/encfs-test/ca.pem', EncfsAttestation: 'simulated', AZURE_POD_IDENTITY_AUTHORITY_HOST: imds.url, EncfsVaultHosts: stack.vaultHostsEnv },
    volumes: [`${stack.caFile}:/etc/encfs-test/ca.pem:ro`, `${stack.dir}/snp:/root/.local/state/encfs/simulated-snp:ro`, `${context}:/security-context-test:ro`],
  }
}

/**
 * The pod's shared volume: a host directory that is a mount point of its own in a shared peer
 * group, so the sidecar's mounts under it (`rshared`, Bidirectional) reach the host and the app
 * container (`rslave`, HostToContainer), as a kubelet's emptyDir does. Unmounted after the file.
 */
export async function sharedVolume(e2e: E2eFixture): Promise<string> {
  const dir = path.join(await e2e.tempDir('encfs-pod-volume-'), 'remote')
  await mkdir(dir)
  await exec('mount', ['--bind', dir, dir])
  e2e.defer(() => exec('umount', ['--recursive', '--lazy', dir]))
  await exec('mount', ['--make-rshared', dir])
  return dir
}

/** What the sidecar holds on the host while it runs: its FUSE connections and loop devices. */
export interface HostHoldings {
  fuseConnections: string[]
  /** `losetup` lines (name, backing file, inode, device) of the loop devices under its mounts. */
  loops: string[]
}

/** Reads the sidecar's holdings from its mount namespace (`pid` is its first process on the host). */
export async function hostHoldings(pid: number): Promise<HostHoldings> {
  const mountinfo = await readFile(`/proc/${pid}/mountinfo`, 'utf8')
  const fuseConnections: string[] = []
  const loopDevices: string[] = []
  for (const line of mountinfo.split('\n')) {
    const [left, right] = line.split(' - ')
    if (!left || !right) continue
    const [fstype, source] = right.split(' ')
    const minor = left.split(' ')[2]?.split(':')[1]
    if (fstype?.startsWith('fuse') && minor) fuseConnections.push(minor)
    if (source?.startsWith('/dev/loop')) loopDevices.push(source)
  }
  const loops: string[] = []
  for (const dev of loopDevices) {
    const { stdout } = await exec('losetup', ['--list', '--noheadings', '--output', 'NAME,BACK-FILE,BACK-INO,BACK-MAJ:MIN', dev]).catch(() => ({ stdout: '' }))
    if (stdout.trim()) loops.push(stdout.trim())
  }
  return { fuseConnections, loops }
}

/** What of `held` is still on the host, and any mount left under the shared volume. */
export async function hostLeftovers(held: HostHoldings, volume: string): Promise<string[]> {
  const found: string[] = []
  const connections = await readdir('/sys/fs/fuse/connections').catch(() => [] as string[])
  for (const c of held.fuseConnections) if (connections.includes(c)) found.push(`FUSE connection ${c}`)
  const { stdout } = await exec('losetup', ['--list', '--noheadings', '--output', 'NAME,BACK-FILE,BACK-INO,BACK-MAJ:MIN'])
  const attached = stdout.split('\n').map((l) => l.trim())
  for (const l of held.loops) if (attached.includes(l)) found.push(`loop device ${l}`)
  for (const line of (await readFile('/proc/self/mounts', 'utf8')).split('\n')) {
    const target = line.split(' ')[1] ?? ''
    if (target.startsWith(`${volume}/`)) found.push(`mount ${line}`)
  }
  return found
}
