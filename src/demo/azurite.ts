import { spawn, type ChildProcess } from 'node:child_process'
import { createServer } from 'node:net'
import { mkdtemp, rm } from 'node:fs/promises'
import { createRequire } from 'node:module'
import os from 'node:os'
import path from 'node:path'
import { BlobServiceClient, StorageSharedKeyCredential, BlobSASPermissions, generateBlobSASQueryParameters } from '@azure/storage-blob'
import { EncfsError } from '../errors/encfs-error.js'
import { constantBackoff, retry, RETRY, STOP } from '../retry/retry.js'
import { uploadImage } from '../storage/upload.js'

/** Azurite's fixed development account (public, documented by Microsoft; not a secret). */
const ACCOUNT = 'devstoreaccount1'
const ACCOUNT_KEY = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='

export interface Azurite {
  blobEndpoint: string
  /** Where Azurite keeps its data. */
  location: string
  accountName: string
  accountKey: string
  connectionString: string
  service: BlobServiceClient
  stop(): Promise<void>
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer()
    srv.once('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number }
      srv.close(() => resolve(port))
    })
  })
}

function azuriteBin(): string {
  try {
    const require = createRequire(import.meta.url)
    return path.join(path.dirname(require.resolve('azurite/package.json')), 'dist', 'src', 'blob', 'main.js')
  } catch (err) {
    throw new EncfsError('AZURITE_MISSING', 'Azurite is not installed: it is a development dependency, run npm ci (or npm run setup)', { cause: err })
  }
}

/** Starts Azurite's blob service on a free loopback port, with its data in a temp dir of its own. */
export async function startAzurite(): Promise<Azurite> {
  const location = await mkdtemp(path.join(os.tmpdir(), 'encfs-azurite-'))
  const port = await freePort()
  const child: ChildProcess = spawn(
    process.execPath,
    [azuriteBin(), '--blobHost', '127.0.0.1', '--blobPort', String(port), '--location', location, '--silent', '--skipApiVersionCheck', '--loose', '--disableTelemetry'],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  )
  let stderr = ''
  child.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString()
  })
  let exited = false
  const exit = new Promise<void>((resolve) =>
    child.once('exit', () => {
      exited = true
      resolve()
    }),
  )
  const blobEndpoint = `http://127.0.0.1:${port}/${ACCOUNT}`
  const connectionString = `DefaultEndpointsProtocol=http;AccountName=${ACCOUNT};AccountKey=${ACCOUNT_KEY};BlobEndpoint=${blobEndpoint};`
  const service = BlobServiceClient.fromConnectionString(connectionString)
  const stop = async () => {
    if (!exited) {
      child.kill('SIGTERM')
      const t = setTimeout(() => child.kill('SIGKILL'), 5_000)
      await exit
      clearTimeout(t)
    }
    await rm(location, { recursive: true, force: true })
  }
  try {
    await retry(() => service.getProperties(), { budgetMs: 30_000, backoff: constantBackoff(100), classify: () => (exited ? STOP : RETRY) })
  } catch (err) {
    await stop()
    throw new EncfsError('AZURITE_FAILED', `Azurite did not start on 127.0.0.1:${port}: ${stderr.trim() || (err as Error).message}`)
  }
  return { blobEndpoint, location, accountName: ACCOUNT, accountKey: ACCOUNT_KEY, connectionString, service, stop }
}

export interface UploadOptions {
  container?: string
  blob?: string
  kind?: 'block' | 'page'
  publicAccess?: boolean
  /** SAS permissions; default r for block blobs, rw for page blobs. */
  sasPermissions?: string
}

/**
 * Uploads a file as a block or page blob (page blobs padded with zeros to 512 bytes) and returns
 * its plain URL and a SAS URL valid for an hour (read-only for block blobs, read+write for page blobs).
 */
export async function uploadFile(az: Azurite, file: string, o: UploadOptions = {}): Promise<{ url: string; sasUrl: string }> {
  const containerName = o.container ?? (o.publicAccess ? 'public' : 'private')
  const container = az.service.getContainerClient(containerName)
  await container.createIfNotExists(o.publicAccess ? { access: 'blob' } : {})
  const name = o.blob ?? `${path.basename(file)}-${Date.now()}-${Math.random().toString(16).slice(2, 8)}`
  await uploadImage(file, container.getBlobClient(name).url, {
    page: o.kind === 'page',
    credential: undefined,
    sharedKey: new StorageSharedKeyCredential(az.accountName, az.accountKey),
  })
  const blob = container.getBlobClient(name)
  return { url: blob.url, sasUrl: `${blob.url}?${blobSas(az, containerName, name, o.sasPermissions ?? (o.kind === 'page' ? 'rw' : 'r'))}` }
}

/** A SAS for one blob, valid from a minute ago for an hour, with `permissions` (e.g. "r", "rw", "rcw"). */
export function blobSas(az: Azurite, container: string, blob: string, permissions: string): string {
  return generateBlobSASQueryParameters(
    {
      containerName: container,
      blobName: blob,
      permissions: BlobSASPermissions.parse(permissions),
      startsOn: new Date(Date.now() - 60_000),
      expiresOn: new Date(Date.now() + 3600_000),
    },
    new StorageSharedKeyCredential(az.accountName, az.accountKey),
  ).toString()
}
