import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { silentLogger, type Logger } from '../../log/logger.js'
import type { TokenAuthority } from '../token-authority.js'

export interface ImdsEmulator {
  /** host:port; point @azure/identity at it with AZURE_POD_IDENTITY_AUTHORITY_HOST=http://<endpoint> */
  endpoint: string
  url: string
  requests: number
  /** Fault injection: refuse the next `n` token requests with `status` (IMDS not up yet). */
  failNext(n: number, status: number): void
  stop(): Promise<void>
}

/**
 * The instance metadata service's managed-identity token endpoint (plain HTTP on loopback, as
 * IMDS is link-local HTTP), issuing tokens the Key Vault emulator accepts.
 */
export async function startImdsEmulator(authority: TokenAuthority, o: { port?: number; defaultClientId?: string; logger?: Logger } = {}): Promise<ImdsEmulator> {
  const logger = o.logger ?? silentLogger
  let failures = { n: 0, status: 503 }
  const state = { requests: 0 }
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://imds')
    const send = (status: number, value: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' })
      res.end(JSON.stringify(value))
    }
    if (!/^\/metadata\/identity\/oauth2\/token\/?$/.test(url.pathname)) return send(404, { error: 'not_found' })
    state.requests++
    if (req.headers.metadata !== 'true') return send(400, { error: 'invalid_request', error_description: 'Required metadata header not specified' })
    if (failures.n > 0) {
      failures.n--
      return send(failures.status, { error: 'temporarily_unavailable', error_description: 'injected failure' })
    }
    const resource = url.searchParams.get('resource')
    if (!resource) return send(400, { error: 'invalid_request', error_description: "Required query variable 'resource' is missing" })
    const clientId = url.searchParams.get('client_id') ?? url.searchParams.get('mi_res_id') ?? o.defaultClientId ?? 'system-assigned'
    authority.issue(resource, clientId).then(
      ({ token, expiresOn }) => {
        logger.info({ resource, clientId }, 'IMDS emulator: token issued')
        send(200, {
          access_token: token,
          refresh_token: '',
          expires_in: '3600',
          expires_on: String(expiresOn),
          not_before: String(expiresOn - 3600),
          resource,
          token_type: 'Bearer',
        })
      },
      (err: Error) => send(500, { error: 'server_error', error_description: err.message }),
    )
  })
  await new Promise<void>((resolve) => server.listen(o.port ?? 0, '127.0.0.1', resolve))
  const endpoint = `127.0.0.1:${(server.address() as AddressInfo).port}`
  return {
    endpoint,
    url: `http://${endpoint}`,
    get requests() {
      return state.requests
    },
    failNext: (n, status) => {
      failures = { n, status }
    },
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}
