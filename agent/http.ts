// The agent's local HTTP API: GET /status (JSON), GET /status/eventlog (the node's event logs,
// decoded), GET /metrics (Prometheus text), GET /healthz, the explorer's pages under /ui/
// (read-only; they read the chain only while someone looks), and everything under /tenant/
// handed to the tenant proxy (containers/), which answers 503 with a reason while the node is
// not certified.
import { createServer } from 'node:http'
import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { jsonReplacer, type Logger } from '../encoding/log.ts'
import { ConfigError } from '../encoding/errors.ts'
import { Admission } from './connlimit.ts'

/** How long stop() lets requests in progress finish before it closes their connections. */
const STOP_GRACE_MS = 2000
/** How often connections past headersTimeout or requestTimeout are closed (Node's default: 30 s). */
const CONNECTIONS_CHECKING_MS = 1000

export type Handler = (req: IncomingMessage, res: ServerResponse) => void | Promise<void>

export interface HttpApiInit {
  listen: string // host:port
  status: () => unknown
  metrics: () => string
  tenant?: Handler
  /** Serverless apps under /app/<name>/ (agent/apps.ts behind the proxy). */
  app?: Handler
  /** The explorer's pages at /ui/ (agent/explorer), given the path below /ui. */
  ui?: (req: IncomingMessage, res: ServerResponse, path: string) => void
  /** GET /status/eventlog: the boot and container event logs this node hands its committees, decoded. */
  eventLog?: () => Promise<unknown>
  logger: Logger
}

export interface HttpApi {
  readonly url: string
  /** The handler of a client route (/tenant/…, /app/…) given to this API: the HTTPS endpoint serves the same ones (agent/tls.ts). */
  clientRoute(path: string): Handler | undefined
  stop(): Promise<void>
}

function json(res: ServerResponse, code: number, body: unknown): void {
  const text = JSON.stringify(body, jsonReplacer)
  res.writeHead(code, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store'
  })
  res.end(text)
}

/**
 * server.listen that turns "address taken / not allowed / not here" into a ConfigError naming the
 * setting that moves it (the likely cause is another agent on this machine); other errors as they are.
 */
export async function listenExplained(
  server: { listen(port: number, host: string, cb: () => void): unknown } & Pick<Server, 'once' | 'off'>,
  host: string,
  port: number,
  what: string,
  hint: string
): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const fail = (err: NodeJS.ErrnoException): void => {
      const taken = err.code === 'EADDRINUSE' || err.code === 'EACCES' || err.code === 'EADDRNOTAVAIL'
      reject(taken ? new ConfigError(`${what} (${err.code ?? ''}); ${hint}`, { cause: err }) : err)
    }
    server.once('error', fail)
    server.listen(port, host, () => {
      server.off('error', fail)
      resolve()
    })
  })
}

export async function startHttpApi(init: HttpApiInit): Promise<HttpApi> {
  const [host, portText] = init.listen.split(':')
  // Node checks headersTimeout only every connectionsCheckingInterval: at its default a client
  // trickling its headers held a connection ~40 s instead of 10
  const server: Server = createServer({ connectionsCheckingInterval: CONNECTIONS_CHECKING_MS }, (req, res) => {
    const url = req.url ?? '/'
    const path = url.split('?')[0]
    void (async () => {
      try {
        if (path === '/status' && req.method === 'GET') {
          json(res, 200, init.status())
          return
        }
        if (path === '/metrics' && req.method === 'GET') {
          const text = init.metrics()
          res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' })
          res.end(text)
          return
        }
        if (path === '/healthz') {
          json(res, 200, { ok: true })
          return
        }
        if (path === '/status/eventlog' && req.method === 'GET' && init.eventLog !== undefined) {
          json(res, 200, await init.eventLog())
          return
        }
        if (path === '/ui' && init.ui !== undefined) {
          // the page's links are relative to /ui/
          res.writeHead(308, { location: '/ui/' }).end()
          return
        }
        if (path.startsWith('/ui/') && init.ui !== undefined) {
          init.ui(req, res, path.slice(3))
          return
        }
        if (path.startsWith('/tenant/') && init.tenant !== undefined) {
          await init.tenant(req, res)
          return
        }
        if (path.startsWith('/app/') && init.app !== undefined) {
          await init.app(req, res)
          return
        }
        json(res, 404, {
          error: 'not found',
          routes: ['/status', '/status/eventlog', '/metrics', '/healthz', '/ui/', '/tenant/<image>/…', '/app/<name>/…']
        })
      } catch (err) {
        init.logger.warn('http handler failed', { path, err })
        if (!res.headersSent) json(res, 500, { error: (err as Error).message })
        else res.destroy()
      }
    })()
  })
  server.headersTimeout = 10_000
  server.requestTimeout = 60_000
  // STYLE §17: 256 connections at once, 64 per address group (IPv6 /64: connlimit.ts); no
  // handshake to protect here, so the rate is only a backstop against a flood of connects
  server.maxConnections = 256
  const admission = new Admission({ perGroup: 64, ratePerSecond: 256, burst: 512 })
  server.prependListener('connection', (socket: Socket) => {
    if (admission.admit(socket) !== undefined) socket.destroy()
  })
  await listenExplained(
    server,
    host,
    Number(portText),
    `the HTTP API cannot listen on ${init.listen}`,
    'give a free one with --http host:port (QUORATE_HTTP, config httpListen; port 0 = any free port)'
  )
  const addr = server.address() as AddressInfo
  const url = `http://${host}:${addr.port}`
  init.logger.info('http api listening', { url })
  return {
    url,
    clientRoute: path => (path.startsWith('/tenant/') ? init.tenant : path.startsWith('/app/') ? init.app : undefined),
    stop: async () => {
      // close() waits for every open connection; idle keep-alive ones go now, and requests still
      // running (a long tenant response, a client that never reads) get STOP_GRACE_MS to finish
      const closed = new Promise<void>(resolve =>
        server.close(() => {
          resolve()
        })
      )
      server.closeIdleConnections()
      const force = setTimeout(() => {
        server.closeAllConnections()
      }, STOP_GRACE_MS)
      await closed
      clearTimeout(force)
    }
  }
}
