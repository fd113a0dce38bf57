// What the paravisor of an Azure confidential VM does for its vTPM, for swtpm in tests: it keeps
// an HCL report in NV index 0x01400001 (header, the SNP report from the simulated chip, IGVM
// request data, variable data holding the AK and the user data) and makes a new one whenever the
// guest writes user data to NV index 0x01400002. It sits as a TCP proxy in front of swtpm and
// watches the TPM commands go by, as the paravisor sees the vTPM's; the guest's TCTI points at it.
import { createHash, type JsonWebKey } from 'node:crypto'
import { createServer, connect, type Server, type Socket } from 'node:net'
import type { SimulatedProvider } from '../../src/attestation/providers/simulated.js'
import { AZURE_VTPM } from '../../src/tpm/vtpm.js'

export const HCL_NV_SIZE = 2048 // swtpm's largest NV index (TPM2_PT_NV_INDEX_MAX)

/** Builds an HCL report as the paravisor lays it out (docs/attestation.md#hcl-report), padded to the NV index. */
export async function buildHclReport(snp: SimulatedProvider, akPub: JsonWebKey, userData: Buffer, vmId = '6A1F2B3C-0000-4000-8000-00000000E7C5'): Promise<Buffer> {
  const runtime = {
    keys: [{ kid: 'HCLAkPub', key_ops: ['sign'], kty: 'RSA', e: akPub.e, n: akPub.n }],
    'vm-configuration': { 'console-enabled': false, 'secure-boot': true, 'tpm-enabled': true, 'tpm-persisted': true, vmUniqueId: vmId },
    'user-data': userData.toString('hex').toUpperCase(),
  }
  const variable = Buffer.from(JSON.stringify(runtime))
  const report = await snp.getReport(createHash('sha256').update(variable).digest())
  const header = Buffer.alloc(32)
  header.write('HCLA', 0, 'latin1')
  header.writeUInt32LE(2, 4)
  header.writeUInt32LE(32 + report.length + 20 + variable.length, 8)
  header.writeUInt32LE(2, 12)
  const request = Buffer.alloc(20)
  request.writeUInt32LE(20 + variable.length, 0)
  request.writeUInt32LE(1, 4)
  request.writeUInt32LE(2, 8) // SEV-SNP
  request.writeUInt32LE(1, 12) // SHA-256
  request.writeUInt32LE(variable.length, 16)
  const hcl = Buffer.concat([header, report, request, variable])
  if (hcl.length > HCL_NV_SIZE) throw new Error(`the HCL report is ${hcl.length} bytes; the NV index holds ${HCL_NV_SIZE}`)
  return Buffer.concat([hcl, Buffer.alloc(HCL_NV_SIZE - hcl.length)])
}

const TPM_CC_NV_WRITE = 0x137
const TPM_RS_PW = 0x40000009
const TPM_RH_OWNER = 0x40000001

/** TPM2_NV_Write of `data` at `offset`, authorized by the owner's (empty) password. */
export function nvWriteCommand(index: number, data: Buffer, offset: number): Buffer {
  const c = Buffer.alloc(10 + 8 + 4 + 9 + 2 + data.length + 2)
  let at = c.writeUInt16BE(0x8002, 0)
  at = c.writeUInt32BE(c.length, at)
  at = c.writeUInt32BE(TPM_CC_NV_WRITE, at)
  at = c.writeUInt32BE(TPM_RH_OWNER, at)
  at = c.writeUInt32BE(index, at)
  at = c.writeUInt32BE(9, at)
  at = c.writeUInt32BE(TPM_RS_PW, at)
  at += 2 + 1 + 2 // empty nonce, no attributes, empty password
  at = c.writeUInt16BE(data.length, at)
  at += data.copy(c, at)
  c.writeUInt16BE(offset, at)
  return c
}

/** Reads whole TPM messages (the size is in their header) off a socket, one at a time. */
class Messages {
  private buf = Buffer.alloc(0)
  private waiting?: () => void
  private ended = false
  constructor(socket: Socket) {
    socket.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d])
      this.waiting?.()
    })
    socket.on('close', () => {
      this.ended = true
      this.waiting?.()
    })
  }
  async next(): Promise<Buffer | undefined> {
    for (;;) {
      if (this.buf.length >= 10 && this.buf.length >= this.buf.readUInt32BE(2)) {
        const n = this.buf.readUInt32BE(2)
        const m = this.buf.subarray(0, n)
        this.buf = this.buf.subarray(n)
        return m
      }
      if (this.ended) return undefined
      await new Promise<void>((resolve) => {
        this.waiting = resolve
      })
      this.waiting = undefined
    }
  }
}

export interface Paravisor {
  /** The port the guest's TCTI names (`swtpm:host=127.0.0.1,port=...`); its control port is the next one. */
  port: number
  /** How many times a write of user data made it refresh the HCL report. */
  readonly refreshes: number
  stop(): Promise<void>
}

/** The user data of a TPM2_NV_Write to the user-data index, when `cmd` is one. */
function userDataWritten(cmd: Buffer): Buffer | undefined {
  if (cmd.readUInt32BE(6) !== TPM_CC_NV_WRITE || cmd.readUInt32BE(14) !== AZURE_VTPM.userData) return undefined
  const params = 18 + 4 + cmd.readUInt32BE(18)
  return Buffer.from(cmd.subarray(params + 2, params + 2 + cmd.readUInt16BE(params)))
}

/** The proxy: forwards every command to swtpm, and after a successful user-data write writes a fresh HCL report. */
export async function startParavisor(o: { port: number; tpmPort: number; refresh: (userData: Buffer) => Promise<Buffer> }): Promise<Paravisor> {
  const sockets = new Set<Socket>()
  let refreshes = 0
  const track = (s: Socket) => {
    sockets.add(s)
    s.on('close', () => sockets.delete(s))
    s.on('error', () => {})
  }
  const exchange = async (upstream: Socket, replies: Messages, cmd: Buffer): Promise<Buffer> => {
    upstream.write(cmd)
    const r = await replies.next()
    if (!r) throw new Error('swtpm closed the connection')
    return r
  }
  const serve = async (client: Socket) => {
    const upstream = connect(o.tpmPort, '127.0.0.1')
    track(upstream)
    const commands = new Messages(client)
    const replies = new Messages(upstream)
    for (let cmd = await commands.next(); cmd; cmd = await commands.next()) {
      const reply = await exchange(upstream, replies, cmd)
      const userData = userDataWritten(cmd)
      if (userData && reply.readUInt32BE(6) === 0) {
        const hcl = await o.refresh(userData)
        for (let off = 0; off < hcl.length; off += 1024) await exchange(upstream, replies, nvWriteCommand(AZURE_VTPM.hclReport, hcl.subarray(off, off + 1024), off))
        refreshes++
      }
      client.write(reply)
    }
    upstream.destroy()
  }
  const data: Server = createServer((client) => {
    track(client)
    serve(client).catch(() => client.destroy())
  })
  // The swtpm TCTI's control channel (port + 1) passes through untouched.
  const ctrl: Server = createServer((client) => {
    const upstream = connect(o.tpmPort + 1, '127.0.0.1')
    track(client)
    track(upstream)
    client.pipe(upstream).pipe(client)
  })
  await new Promise<void>((resolve, reject) => data.once('error', reject).listen(o.port, '127.0.0.1', resolve))
  await new Promise<void>((resolve, reject) => ctrl.once('error', reject).listen(o.port + 1, '127.0.0.1', resolve))
  return {
    port: o.port,
    get refreshes() {
      return refreshes
    },
    async stop() {
      for (const s of sockets) s.destroy()
      await Promise.all([data, ctrl].map((s) => new Promise<void>((resolve) => s.close(() => resolve()))))
    },
  }
}
