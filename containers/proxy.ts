// The tenant request proxy: `/tenant/<image>/<path>` on the agent's HTTP server is forwarded to
// the running container of that image (http://127.0.0.1:<port>/<path>, or the relay socket of an
// isolated tenant), streaming both ways.
// While the node is not certified every request is answered 503 with the reason: clients must
// never be served by a node whose certification has ended. Limits: request body size,
// concurrent requests, time to the upstream's response headers, and idle time on either side.
//
// Upstream connections are kept alive (one http.Agent per target), so the hot path costs no TCP
// handshake per request. The target may be resolved asynchronously (agent/apps.ts starts an app on
// its first request); a resolver that knows the target answers synchronously, with no extra tick.
// A resolver that cannot give a target throws (or rejects with) an error carrying `status` (and
// `retryAfter`, seconds), answered as that status with the error's message.
//
// Concurrency is limited per tenant and for the node: a tenant that holds its requests (slow,
// stuck, or flooded) may take at most maxPerTenant slots, and once half of the node's slots are
// in use no tenant may take more than an equal share of them (counted with room for one more
// tenant) — so one tenant cannot exhaust the pool that the others need. A refusal is 503 with
// Retry-After and the reason.
import {
  Agent as HttpAgent,
  request as httpRequest,
  type IncomingMessage,
  type ServerResponse,
  type IncomingHttpHeaders,
  type OutgoingHttpHeaders
} from 'node:http'
import type { Logger } from '../encoding/log.ts'
import { silentLogger } from '../encoding/log.ts'
import { InvalidInputError } from '../encoding/errors.ts'
import type { CertificationStatus } from './runner.ts'

export interface TenantProxyInit {
  /** Current certification of this node (ContainerRunner.certification). */
  readonly certification: () => CertificationStatus
  /**
   * The port of the running container for an image name (ContainerRunner.get), or a promise of it
   * (an app being started). Throwing or rejecting with a ProxyRefusal-like error answers its status.
   */
  readonly resolve: (image: string) => ProxyTarget | undefined | Promise<ProxyTarget | undefined>
  /**
   * Why nothing runs for an image (not deployed here, not published, revoked, its launch failed…),
   * asked only for the 404 of a request that found no target; sent as the answer's `reason`.
   */
  readonly why?: (image: string) => string | undefined | Promise<string | undefined>
  /** Called once per proxied request when it ends: body bytes received and response bytes sent. */
  readonly account?: (image: string, bytesIn: number, bytesOut: number) => void
  /** Path prefix (default '/tenant/'). */
  readonly prefix?: string
  /** Largest request body (default 16 MiB). */
  readonly maxBodyBytes?: number
  /** Most requests in flight on the node, all tenants together (default 64). */
  readonly maxConcurrent?: number
  /** Most requests in flight for one tenant (default a quarter of maxConcurrent, at least 1). */
  readonly maxPerTenant?: number
  /** Time until the container's response headers (default 30 s). */
  readonly responseTimeoutMs?: number
  /** Idle time on the container's response body (default 60 s). */
  readonly idleTimeoutMs?: number
  readonly logger?: Logger
}

/** Where a request goes: a port on 127.0.0.1, or a relay socket. */
export interface ProxyTarget {
  readonly port: number
  readonly socketPath?: string
}

/** What a resolver throws to refuse a request with a status (e.g. 404, 410, 503 + Retry-After). */
export interface ProxyRefusal extends Error {
  readonly status: number
  /** Seconds, sent as Retry-After. */
  readonly retryAfter?: number
}

export interface TenantProxy {
  /** Handles the request when its path is under the prefix; returns false otherwise. */
  handle(req: IncomingMessage, res: ServerResponse): boolean
  /** For http.createServer: everything outside the prefix is 404. */
  readonly handler: (req: IncomingMessage, res: ServerResponse) => void
  /** Requests in flight, all tenants. */
  readonly inFlight: number
  /** Requests in flight for one tenant (image name). */
  inFlightOf(image: string): number
  /** Requests refused for want of a slot since start, by the limit that refused them. */
  refused(): Readonly<Record<ProxyLimit, number>>
  /** Closes the kept-alive upstream connections (the agent's shutdown). */
  close(): void
}

/** Most upstream targets with a kept-alive connection pool (the oldest pool is closed beyond it). */
const MAX_POOLS = 256

/** Which in-flight limit refused a request: the tenant's own, the node's, or the fair share. */
export type ProxyLimit = 'tenant' | 'node' | 'share'

// RFC 9110 §7.6.1: connection-specific fields are not forwarded.
const HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade'
])

function forwardable(h: IncomingHttpHeaders): OutgoingHttpHeaders {
  const listed = new Set(
    String(h.connection ?? '')
      .toLowerCase()
      .split(',')
      .map(s => s.trim())
      .filter(Boolean)
  )
  const out: OutgoingHttpHeaders = {}
  for (const [k, v] of Object.entries(h)) if (v !== undefined && !HOP.has(k) && !listed.has(k)) out[k] = v
  return out
}

function reply(
  res: ServerResponse,
  status: number,
  body: Record<string, unknown>,
  extra: OutgoingHttpHeaders = {}
): void {
  if (res.headersSent) {
    res.destroy()
    return
  }
  const b = JSON.stringify(body) + '\n'
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(b),
    'cache-control': 'no-store',
    ...extra
  })
  res.end(b)
}

export function createTenantProxy(init: TenantProxyInit): TenantProxy {
  const prefix = init.prefix ?? '/tenant/'
  const maxBody = init.maxBodyBytes ?? 16 << 20
  const maxConcurrent = init.maxConcurrent ?? 64
  const maxPerTenant = init.maxPerTenant ?? Math.max(1, Math.floor(maxConcurrent / 4))
  for (const [name, v] of [
    ['maxConcurrent', maxConcurrent],
    ['maxPerTenant', maxPerTenant]
  ] as const) {
    if (!Number.isSafeInteger(v) || v < 1)
      throw new InvalidInputError(`tenant proxy: ${name} must be a positive integer, got ${v}`)
  }
  if (maxPerTenant > maxConcurrent)
    throw new InvalidInputError(`tenant proxy: maxPerTenant (${maxPerTenant}) exceeds maxConcurrent (${maxConcurrent})`)
  const responseTimeout = init.responseTimeoutMs ?? 30_000
  const idleTimeout = init.idleTimeoutMs ?? 60_000
  const log = init.logger ?? silentLogger('quorate:containers:proxy')
  let inFlight = 0
  const perTenant = new Map<string, number>()
  const refusedBy: Record<ProxyLimit, number> = { tenant: 0, node: 0, share: 0 }
  const pools = new Map<string, HttpAgent>()
  const poolFor = (t: ProxyTarget): HttpAgent => {
    const key = t.socketPath !== undefined ? `unix:${t.socketPath}` : `tcp:${t.port}`
    let a = pools.get(key)
    if (a === undefined) {
      if (pools.size >= MAX_POOLS) {
        const [oldKey, old] = pools.entries().next().value as [string, HttpAgent]
        pools.delete(oldKey)
        old.destroy()
      }
      // No socket timeout here: it would also cut responses slower than it. Free sockets close
      // when the server closes them or after the idle time its Keep-Alive header announces.
      a = new HttpAgent({ keepAlive: true })
      pools.set(key, a)
    }
    return a
  }

  /** Why a request for `image` may not take a slot now, or undefined when it may. */
  const refusal = (image: string): { limit: ProxyLimit; reason: string } | undefined => {
    const mine = perTenant.get(image) ?? 0
    if (mine >= maxPerTenant)
      return { limit: 'tenant', reason: `tenant ${JSON.stringify(image)} has ${mine} requests in flight, its limit` }
    if (inFlight >= maxConcurrent)
      return { limit: 'node', reason: `the node has ${inFlight} requests in flight, its limit` }
    // under pressure, a tenant keeps at most an equal share of the node's slots, counted with
    // room for one more tenant, so that a newcomer still finds a free slot
    const tenants = perTenant.size + (mine === 0 ? 1 : 0)
    const share = Math.max(1, Math.floor(maxConcurrent / (tenants + 1)))
    if (inFlight * 2 >= maxConcurrent && mine >= share) {
      return {
        limit: 'share',
        reason: `the node is busy (${inFlight} of ${maxConcurrent} requests in flight) and tenant ${JSON.stringify(image)} holds its share (${share})`
      }
    }
    return undefined
  }

  const handle = (req: IncomingMessage, res: ServerResponse): boolean => {
    const url = req.url ?? '/'
    if (!url.startsWith(prefix)) return false
    const rest = url.slice(prefix.length)
    const slash = rest.search(/[/?]/)
    let image: string
    try {
      image = decodeURIComponent(slash === -1 ? rest : rest.slice(0, slash))
    } catch {
      reply(res, 400, { error: 'bad image name in path' })
      return true
    }
    const path = slash === -1 ? '/' : rest[slash] === '?' ? '/' + rest.slice(slash) : rest.slice(slash)

    const cert = init.certification()
    if (!cert.certified) {
      reply(
        res,
        503,
        { error: 'node not certified', reason: cert.reason ?? 'no valid certification on chain' },
        { 'retry-after': '30' }
      )
      req.resume()
      return true
    }
    const refuse = (err: unknown): void => {
      const r = err as Partial<ProxyRefusal>
      if (typeof r.status === 'number' && r.status >= 400 && r.status < 600) {
        reply(
          res,
          r.status,
          { error: r.message ?? 'refused', ...(typeof r.name === 'string' ? { name: r.name } : {}) },
          r.retryAfter !== undefined ? { 'retry-after': String(Math.max(0, Math.ceil(r.retryAfter))) } : {}
        )
      } else {
        log.warn('resolving a proxy target failed', { image, error: (err as Error).message })
        reply(res, 502, { error: `cannot reach ${JSON.stringify(image)}: ${(err as Error).message}` })
      }
      req.resume()
    }
    let resolved: ReturnType<TenantProxyInit['resolve']>
    try {
      resolved = init.resolve(image)
    } catch (err) {
      refuse(err)
      return true
    }
    if (resolved instanceof Promise) {
      resolved.then(
        target => {
          // the client may have gone while the target was being started
          if (!res.destroyed && !req.destroyed) forward(req, res, image, path, target)
        },
        (err: unknown) => {
          if (!res.destroyed) refuse(err)
        }
      )
    } else forward(req, res, image, path, resolved)
    return true
  }

  const notRunning = (req: IncomingMessage, res: ServerResponse, image: string): void => {
    req.resume()
    const error = `no running container for image ${JSON.stringify(image)}`
    if (init.why === undefined) {
      reply(res, 404, { error })
      return
    }
    const why = init.why
    void (async () => await why(image))().then(
      reason => {
        if (!res.destroyed) reply(res, 404, reason !== undefined ? { error, reason } : { error })
      },
      (err: unknown) => {
        log.debug('explaining a missing tenant failed', { image, error: (err as Error).message })
        if (!res.destroyed) reply(res, 404, { error })
      }
    )
  }

  const forward = (
    req: IncomingMessage,
    res: ServerResponse,
    image: string,
    path: string,
    target: ProxyTarget | undefined
  ): void => {
    if (target === undefined) {
      notRunning(req, res, image)
      return
    }
    const declared = Number(req.headers['content-length'] ?? 0)
    if (Number.isFinite(declared) && declared > maxBody) {
      reply(res, 413, { error: `request body exceeds ${maxBody} bytes` }, { connection: 'close' })
      req.resume()
      return
    }
    const refused = refusal(image)
    if (refused !== undefined) {
      refusedBy[refused.limit]++
      log.debug('request refused', { image, reason: refused.reason })
      reply(res, 503, { error: 'too many requests in flight', reason: refused.reason }, { 'retry-after': '1' })
      req.resume()
      return
    }

    inFlight++
    perTenant.set(image, (perTenant.get(image) ?? 0) + 1)
    let done = false
    let bodyBytes = 0
    let outBytes = 0
    const finish = (): void => {
      if (done) return
      done = true
      init.account?.(image, bodyBytes, outBytes)
      inFlight--
      const left = (perTenant.get(image) ?? 1) - 1
      if (left === 0) perTenant.delete(image)
      else perTenant.set(image, left)
    }
    res.on('close', finish)

    const headers = forwardable(req.headers)
    const fwd = req.headers['x-forwarded-for']
    headers['x-forwarded-for'] = [fwd, req.socket.remoteAddress].filter(x => x !== undefined && x !== '').join(', ')
    headers['x-forwarded-proto'] = 'http'
    if (req.headers.host !== undefined) headers['x-forwarded-host'] = req.headers.host

    const where =
      target.socketPath !== undefined ? { socketPath: target.socketPath } : { host: '127.0.0.1', port: target.port }
    // A kept-alive connection the container closed just as it was reused fails with ECONNRESET
    // before any answer: a request without a body is then sent again (RFC 9112 §9.3.1 allows
    // retrying idempotent requests), on another connection.
    const bodiless =
      (req.method === 'GET' || req.method === 'HEAD') &&
      (req.headers['content-length'] === undefined || req.headers['content-length'] === '0') &&
      req.headers['transfer-encoding'] === undefined
    let up: ReturnType<typeof httpRequest>
    const send = (attempt: number): ReturnType<typeof httpRequest> => {
      const u = httpRequest({ ...where, method: req.method, path, headers, agent: poolFor(target) })
      const responseTimer = setTimeout(() => {
        u.destroy(Object.assign(new Error('upstream response timeout'), { code: 'QUORATE_TIMEOUT' }))
      }, responseTimeout)
      u.on('response', ur => {
        clearTimeout(responseTimer)
        res.writeHead(ur.statusCode ?? 502, ur.statusMessage, forwardable(ur.headers))
        // the socket is kept alive for later requests: its idle listener is this response's only
        const sock = ur.socket
        const onIdle = (): void => {
          ur.destroy(new Error('upstream idle timeout'))
        }
        sock.setTimeout(idleTimeout)
        sock.on('timeout', onIdle)
        ur.once('close', () => {
          sock.off('timeout', onIdle)
        })
        ur.on('data', (c: Buffer) => {
          outBytes += c.byteLength
        })
        ur.pipe(res)
        ur.on('error', () => {
          res.destroy()
        })
      })
      u.on('error', (err: Error & { code?: string }) => {
        clearTimeout(responseTimer)
        if (
          bodiless &&
          u.reusedSocket &&
          attempt < 3 &&
          (err.code === 'ECONNRESET' || err.code === 'EPIPE') &&
          !res.headersSent &&
          !res.destroyed
        ) {
          log.debug('kept-alive upstream connection was closed; sending again', { image, attempt })
          up = send(attempt + 1)
          return
        }
        const timeout = err.code === 'QUORATE_TIMEOUT'
        log.debug('upstream error', { image, error: err.message })
        if (!res.headersSent)
          reply(res, timeout ? 504 : 502, {
            error: timeout ? 'container did not answer in time' : `container unreachable: ${err.message}`
          })
        else res.destroy()
      })
      if (attempt > 0) u.end()
      return u
    }
    up = send(0)
    req.on('data', (c: Buffer) => {
      bodyBytes += c.byteLength
      if (bodyBytes > maxBody) {
        req.unpipe(up)
        up.destroy(new Error('request body too large'))
        reply(res, 413, { error: `request body exceeds ${maxBody} bytes` }, { connection: 'close' })
        res.once('finish', () => {
          req.destroy()
        })
      }
    })
    req.on('error', () => {
      up.destroy()
    })
    res.on('close', () => {
      if (!res.writableFinished) up.destroy()
    })
    req.pipe(up)
  }

  return {
    handle,
    handler: (req, res) => {
      if (!handle(req, res)) reply(res, 404, { error: 'not found' })
    },
    get inFlight() {
      return inFlight
    },
    inFlightOf: image => perTenant.get(image) ?? 0,
    refused: () => ({ ...refusedBy }),
    close: () => {
      for (const a of pools.values()) a.destroy()
      pools.clear()
    }
  }
}
