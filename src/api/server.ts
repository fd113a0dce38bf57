import Fastify, { type FastifyInstance, type FastifyError, type FastifyBaseLogger, type FastifyReply } from 'fastify'
import type { Logger } from '../log/logger.js'
import type { AttestationContext } from '../attestation/context.js'
import type { IdentityConfig } from '../identity/credential.js'
import { maaReportData } from '../attestation/report-data.js'
import { evidence } from '../attestation/evidence.js'
import { combinedEvidence } from '../attestation/combined.js'
import { attestVerified } from '../maa/verified-attest.js'
import { releaseKey } from '../skr/release.js'
import type { VaultHost } from '../skr/vault-hosts.js'
import { randomBytes } from 'node:crypto'
import { runtimeDataBody, maaBody, releaseBody } from './schemas.js'
import { decodeGoStdBase64 } from '../encoding/base64.js'
import type { ServiceStatus } from './status.js'
import { apiStatusFor } from './error-status.js'
import { EncfsError } from '../errors/encfs-error.js'
import { STATUS_CODES } from 'node:http'
import type { Duplex } from 'node:stream'
import { bindLikeGo, parseAnyBodyAsJson } from './go-body.js'
import type { MaaUserAgent } from '../maa/user-agent.js'

export interface ApiOptions {
  status: ServiceStatus
  attestation: AttestationContext
  identity?: IdentityConfig
  logger: Logger
  /** Extra CAs for MAA and the vault (tests with emulators). */
  ca?: string[]
  /** The operator's vault hosts (default: env EncfsVaultHosts); akv_endpoint must be one, or a cloud vault. */
  vaultHosts?: readonly VaultHost[]
  bodyLimit?: number
  /** The process's MAA User-Agent (skr's maaconfig.user_agent, or Go's default), on every MAA request. */
  maaUserAgent?: MaaUserAgent
  /** Server-side limits for slow or idle clients (defaults in API_TIMEOUTS). */
  timeouts?: Partial<typeof API_TIMEOUTS>
}

/**
 * How long a client may take: to send its headers, to send the whole request, and to leave a
 * keep-alive connection idle. Handlers themselves may take longer (MAA and the vault with their
 * retries): no limit applies while the answer is being prepared.
 */
export const API_TIMEOUTS = { headersMs: 10_000, requestMs: 30_000, keepAliveMs: 5_000 }

class ApiFailure extends Error {
  constructor(
    readonly status: number,
    message: string,
    cause?: unknown,
  ) {
    super(message, { cause })
  }
}

/**
 * Malformed HTTP (garbage, oversized headers, a client too slow to send its request) never
 * reaches a route: answer it on the socket in the API's shape, then close.
 */
function writeClientError(err: NodeJS.ErrnoException, socket: Duplex): void {
  if (err.code === 'ECONNRESET' || socket.destroyed || !socket.writable) return
  const [status, message] =
    err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
      ? [408, 'the request took too long to arrive']
      : err.code === 'HPE_HEADER_OVERFLOW'
        ? [431, 'the request headers are too large']
        : [400, 'malformed HTTP request']
  const body = JSON.stringify({ error: message })
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  )
}

const ROUTES: Record<string, string[]> = {
  '/status': ['GET'],
  '/attest/raw': ['POST'],
  '/attest/combined': ['POST'],
  '/attest/maa': ['POST'],
  '/key/release': ['POST'],
}

/** What a failed body validation says: each field and what is wrong with it. */
function validationMessage(validation: NonNullable<FastifyError['validation']>): string {
  const problems = validation.map((v) => {
    const field = v.instancePath.replace(/^\//, '') || String((v.params as { missingProperty?: string }).missingProperty ?? 'body')
    const what =
      v.keyword === 'required'
        ? 'is required'
        : v.keyword === 'minLength'
          ? 'must not be empty'
          : v.keyword === 'type'
            ? `must be a ${String((v.params as { type?: string }).type)}`
            : v.keyword === 'pattern'
              ? field === 'runtime_data'
                ? 'must be standard base64'
                : field === 'kid'
                  ? 'must be a key name, or name/version'
                  : 'must be a host name (and :port), without https://'
              : (v.message ?? 'is invalid')
    return `${field} ${what}`
  })
  return `invalid request: ${problems.join('; ')}`
}

/** Every error the API answers is {"error": message}: failed steps, validation, Fastify's own, unknown paths and methods. */
function answerErrorsAsJson(app: FastifyInstance, bodyLimit: number): void {
  app.setErrorHandler((err: FastifyError | ApiFailure, req, reply) => {
    if (err instanceof ApiFailure) {
      const code = err.cause instanceof EncfsError ? err.cause.code : undefined
      if (err.status >= 500) req.log.error({ status: err.status, code, reason: err.message }, 'request failed')
      else req.log.warn({ status: err.status, code, reason: err.message }, 'request refused')
      return reply.code(err.status).send({ error: err.message })
    }
    const validation = (err as FastifyError).validation
    if (validation) return reply.code(400).send({ error: validationMessage(validation) })
    const status = (err as FastifyError).statusCode ?? 500
    if (status >= 500) req.log.error({ err }, 'internal error')
    return reply.code(status).send({ error: status === 413 ? `the request body is larger than ${bodyLimit} bytes` : status >= 500 ? 'internal error' : err.message })
  })
  app.setNotFoundHandler((req, reply) => {
    const path = req.url.split('?')[0] ?? ''
    const allowed = ROUTES[path]
    if (allowed)
      return reply
        .code(405)
        .header('allow', allowed.join(', '))
        .send({ error: `${req.method} is not allowed on ${path}; use ${allowed.join(', ')}` })
    return reply.code(404).send({ error: `no such endpoint: ${req.method} ${path}` })
  })
}

const runtime = (b64: string): Buffer => {
  const data = decodeGoStdBase64(b64)
  if (!data) throw new ApiFailure(400, 'runtime_data is not valid standard base64')
  return data
}

/** A step that calls on attestation, MAA or the vault: its failure is answered with the status its error code has. */
async function attestStep<T>(what: string, f: () => Promise<T>): Promise<T> {
  try {
    return await f()
  } catch (err) {
    if (err instanceof ApiFailure) throw err
    throw new ApiFailure(apiStatusFor(err), `${what} failed: ${(err as Error).message}`, err)
  }
}

/** /status, the three attestation routes and key release (docs/http-api.md). */
function routes(app: FastifyInstance, o: ApiOptions): void {
  app.get('/status', async (_req, reply) => {
    const s = o.status.snapshot()
    return reply.code(s.ready ? 200 : 503).send({ message: s.ready ? 'Status OK' : `not ready: ${s.phase}`, ...s, attestation: o.attestation.describe() })
  })

  const go = (body: { properties: object }) => ({ schema: { body }, preValidation: bindLikeGo(Object.keys(body.properties)) })
  app.post<{ Body: { runtime_data: string } }>('/attest/raw', go(runtimeDataBody), async (req) => {
    const data = runtime(req.body.runtime_data)
    const report = await attestStep('getting an SNP report', async () => (await o.attestation.ready()).provider.getReport(maaReportData(data)))
    return { report: report.toString('hex') }
  })

  app.post<{ Body: { runtime_data: string } }>('/attest/combined', go(runtimeDataBody), async (req) => {
    const data = runtime(req.body.runtime_data)
    return attestStep('getting the attestation evidence', async () => {
      const e = await combinedEvidence(await o.attestation.ready(), data, { logger: req.log as unknown as Logger })
      return { endorsed_tcb: e.endorsedTcb, endorsements: e.certs, evidence: e.report, uvm_endorsements: e.uvmReferenceInfo }
    })
  })

  app.post<{ Body: { maa_endpoint: string; runtime_data: string; include_claims?: boolean } }>('/attest/maa', go(maaBody), async (req) => {
    const data = runtime(req.body.runtime_data)
    const { token, claims } = await attestStep('attestation', async () => {
      const setup = await o.attestation.ready()
      const { report, chain } = await evidence(setup, maaReportData(data), { logger: req.log as unknown as Logger })
      return attestVerified(
        { report, vcekCertChain: chain.chainPem, referenceInfo: setup.uvm.referenceInfo, runtimeData: data, nonce: randomBytes(8).readBigUInt64LE() },
        { endpoint: req.body.maa_endpoint, ca: o.ca, userAgent: o.maaUserAgent?.value, logger: req.log as unknown as Logger },
      )
    })
    return req.body.include_claims ? { token, claims } : { token }
  })

  app.post<{ Body: { maa_endpoint: string; akv_endpoint: string; kid: string; access_token?: string } }>('/key/release', go(releaseBody), async (req) => {
    const b = req.body
    const released = await attestStep('secure key release', async () => {
      const { provider, collateral, uvm } = await o.attestation.ready()
      return releaseKey({
        maaEndpoint: b.maa_endpoint,
        akvEndpoint: b.akv_endpoint,
        akvField: 'akv_endpoint',
        vaultHosts: o.vaultHosts,
        kid: b.kid,
        accessToken: b.access_token || undefined,
        identity: o.identity,
        provider,
        collateral,
        uvm,
        ca: o.ca,
        maaUserAgent: o.maaUserAgent?.value,
        logger: req.log as unknown as Logger,
      })
    })
    try {
      // As the Go sidecar answers: the JWK as a JSON string, not an object.
      return { key: JSON.stringify(released.jwk()) }
    } finally {
      released.material.fill(0)
    }
  })
}

/**
 * The skr sidecar's HTTP API (docs/http-api.md): same paths, bodies and answers, errors as
 * {"error": message}. Handlers only await: report signing, MAA and the vault never block the
 * event loop that also answers FUSE.
 */
export function buildApi(o: ApiOptions): FastifyInstance {
  const timeouts = { ...API_TIMEOUTS, ...o.timeouts }
  const bodyLimit = o.bodyLimit ?? 1024 * 1024
  const app = Fastify({
    loggerInstance: o.logger.child({ component: 'api' }) as FastifyBaseLogger,
    bodyLimit,
    requestTimeout: timeouts.requestMs,
    keepAliveTimeout: timeouts.keepAliveMs,
    // Node checks the headers and request timeouts only this often (30 s by default). Without a
    // Host header Node itself would answer 400 with an empty body: let the API answer instead.
    http: { headersTimeout: timeouts.headersMs, connectionsCheckingInterval: Math.min(1000, timeouts.headersMs), requireHostHeader: false },
    // Errors Fastify raises before routing (a bad URL encoding...) get the API's shape too.
    frameworkErrors: (err, _req, reply) => {
      void (reply as FastifyReply).code(err.statusCode ?? 400).send({ error: err.message })
    },
    clientErrorHandler: (err, socket) => writeClientError(err as NodeJS.ErrnoException, socket),
  })
  parseAnyBodyAsJson(app, (message) => new ApiFailure(400, message))
  answerErrorsAsJson(app, bodyLimit)
  routes(app, o)
  return app
}

/**
 * Listens on loopback only (127.0.0.1 and ::1, as skr's `localhost:<port>`); any other address
 * needs the operator's explicit `unsafeListen`.
 */
export async function listenApi(app: FastifyInstance, o: { port: number; unsafeListen?: string; logger: Logger }): Promise<string[]> {
  if (o.unsafeListen) {
    o.logger.warn({ address: o.unsafeListen }, "the attestation and key release API listens beyond loopback (--unsafe-listen): anyone who reaches it can request this pod's keys")
    await app.listen({ host: o.unsafeListen, port: o.port })
  } else {
    await app.listen({ host: 'localhost', port: o.port })
  }
  const addresses = app.addresses().map((a) => (typeof a === 'string' ? a : a.family === 'IPv6' ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`))
  o.logger.info({ addresses }, 'attestation and key release API listening')
  return addresses
}
