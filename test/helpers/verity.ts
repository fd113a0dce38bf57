import { readFile, rm } from 'node:fs/promises'
import { runCommand } from '../../src/process/run.js'

export interface VeritysetupFormat {
  dataBlocks?: number
  hashOffset?: number
  salt?: Buffer
  uuid?: string
}

/** Runs real `veritysetup format` (offline, on files) and returns the root hash it printed. */
export async function veritysetupFormat(data: string, hash: string, o: VeritysetupFormat = {}): Promise<Buffer> {
  const rootFile = `${hash}.root-${process.pid}-${Date.now()}`
  try {
    await runCommand('veritysetup', [
      'format',
      `--root-hash-file=${rootFile}`,
      ...(o.dataBlocks !== undefined ? [`--data-blocks=${o.dataBlocks}`] : []),
      ...(o.hashOffset !== undefined ? [`--hash-offset=${o.hashOffset}`] : []),
      ...(o.salt ? [`--salt=${o.salt.toString('hex')}`] : []),
      ...(o.uuid ? [`--uuid=${o.uuid}`] : []),
      data,
      hash,
    ])
    return Buffer.from((await readFile(rootFile, 'utf8')).trim(), 'hex')
  } finally {
    await rm(rootFile, { force: true })
  }
}

/** Runs real `veritysetup verify`; resolves with its exit code (0: the data matches the tree and root). */
export async function veritysetupVerify(data: string, hash: string, root: Buffer, o: { hashOffset?: number; dataBlocks?: number } = {}): Promise<{ code: number; stderr: string }> {
  const r = await runCommand(
    'veritysetup',
    [
      'verify',
      ...(o.hashOffset !== undefined ? [`--hash-offset=${o.hashOffset}`] : []),
      ...(o.dataBlocks !== undefined ? [`--data-blocks=${o.dataBlocks}`] : []),
      data,
      hash,
      root.toString('hex'),
    ],
    { okCodes: [0, 1, 2, 3, 4, 5] },
  )
  return { code: r.code, stderr: r.stderr }
}
