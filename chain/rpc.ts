// HTTP RPC of the embedded validator, following CometBFT's RPC (v0.38) for the methods we use
// (chain/rpc-methods.ts): JSON-RPC 2.0 POSTed to "/" (single or batch) and GET "/<method>?arg=…"
// ("URI over HTTP"; argument forms in chain/rpc-jsonrpc.ts).
//
// Every connection and every byte a client makes us hold is bounded: open connections
// (`maxConnections`), the size of one request body (refused from its Content-Length before any
// of it is read), the body bytes buffered across all requests at once (a request that would
// exceed them is answered 503 and its connection closed), and the time to receive a whole
// request (a slow upload ends there).
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { InvalidInputError } from '../encoding/errors.ts'
import { silentLogger, type Logger } from '../encoding/log.ts'
import type { BlockProducer } from './producer.ts'
import { createRpcMethods, type RpcMethod } from './rpc-methods.ts'
import {
  MAX_BATCH,
  MAX_JSON_DEPTH,
  RpcError,
  bindParams,
  internal,
  invalidParams,
  invalidRequest,
  jsonDepthExceeds,
  methodNotFound,
  parseError,
  parseRequest,
  queryParams,
  type Params,
  type ParsedRequest,
  type RpcId
} from './rpc-jsonrpc.ts'

export { RPC_VERSION, blockJson, txResultJson } from './rpc-methods.ts'

export interface RpcLimits {
  /** Connections open at once; more are closed as they arrive (CometBFT: max_open_connections). */
  maxConnections: number
  /** Largest request body (a 64 KiB tx is ≈ 88 KiB as base64 in JSON). */
  maxBodyBytes: number
  /** Request body bytes held across all connections at once. */
  maxBufferedBytes: number
  /** Time to receive a whole request, headers and body, ms. */
  requestTimeoutMs: number
  /** Most requests in one JSON-RPC batch (at most MAX_BATCH). */
  maxBatch: number
}

export const DEFAULT_RPC_LIMITS: Readonly<RpcLimits> = {
  maxConnections: 256,
  maxBodyBytes: 256 * 1024,
  maxBufferedBytes: 32 * 1024 * 1024,
  requestTimeoutMs: 15_000,
  maxBatch: MAX_BATCH
}

export interface RpcServerOptions {
  producer: BlockProducer
  /** host:port; port 0 = ephemeral. Loopback only unless you mean it. */
  listen: string
  /** Asks the validator to produce soon (called after a tx entered the mempool). */
  kick: () => void
  /** How long broadcast_tx_commit waits for inclusion (ms). */
  commitTimeoutMs?: number
  limits?: Partial<RpcLimits>
  logger?: Logger
}

export interface RpcServer {
  readonly url: string
  readonly port: number
  close(): Promise<void>
}

/** GET answers carry CometBFT's id for URI requests. */
const URI_ID = -1

/** HTTP status of a GET error: the client's fault (400), an unknown method (404), ours (500). */
function uriStatus(e: RpcError): number {
  if (e.rpcCode === -32601) return 404
  if (e.rpcCode === -32603) return 500
  return 400
}

const errorJson = (id: RpcId, e: RpcError): Record<string, unknown> => ({
  jsonrpc: '2.0',
  id,
  error: { code: e.rpcCode, message: e.message, data: e.data }
})

function reply(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const s = JSON.stringify(body)
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(s), ...headers })
  res.end(s)
}

/** Answers and closes the connection, leaving the unread body unread. */
function refuse(res: ServerResponse, status: number, e: RpcError, headers: Record<string, string> = {}): void {
  reply(res, status, errorJson(null, e), { connection: 'close', ...headers })
}

/** Budget of request body bytes held at once, over all connections. */
class BodyBudget {
  #used = 0
  readonly max: number
  constructor(max: number) {
    this.max = max
  }
  take(n: number): boolean {
    if (this.#used + n > this.max) return false
    this.#used += n
    return true
  }

  give(n: number): void {
    this.#used -= n
  }
}

/**
 * Reads a POST body within the limits, or answers the refusal itself and returns undefined.
 * The budget is taken for the declared length (or the most a body may be, when it is chunked)
 * before any byte is read, so a slow upload holds budget, not memory beyond it.
 */
async function readBody(
  req: IncomingMessage,
  res: ServerResponse,
  limits: RpcLimits,
  budget: BodyBudget
): Promise<string | undefined> {
  const declared = req.headers['content-length']
  const size = declared === undefined ? limits.maxBodyBytes : Number(declared)
  if (!Number.isSafeInteger(size) || size < 0) {
    refuse(res, 400, invalidRequest('bad Content-Length'))
    return undefined
  }
  if (size > limits.maxBodyBytes) {
    refuse(res, 413, invalidRequest(`request body of ${size} bytes exceeds the limit of ${limits.maxBodyBytes}`))
    return undefined
  }
  if (!budget.take(size)) {
    refuse(res, 503, internal('the RPC server holds as many request bytes as it may; retry shortly'), {
      'retry-after': '1'
    })
    return undefined
  }
  try {
    const chunks: Buffer[] = []
    let got = 0
    for await (const c of req) {
      got += (c as Buffer).length
      if (got > size) {
        refuse(res, 413, invalidRequest(`request body exceeds ${size} bytes`))
        return undefined
      }
      chunks.push(c as Buffer)
    }
    return Buffer.concat(chunks).toString('utf8')
  } finally {
    budget.give(size)
  }
}

export async function startRpcServer(opts: RpcServerOptions): Promise<RpcServer> {
  const log = opts.logger ?? silentLogger('quorate:chain:rpc')
  const limits: RpcLimits = { ...DEFAULT_RPC_LIMITS, ...opts.limits }
  const budget = new BodyBudget(limits.maxBufferedBytes)
  let url = ''
  const methods = createRpcMethods({
    producer: opts.producer,
    kick: opts.kick,
    commitTimeoutMs: opts.commitTimeoutMs ?? 30_000,
    url: () => url
  })

  /** Runs a method; every failure becomes the RpcError to answer with. */
  async function call(method: RpcMethod, name: string, params: Params, uri: boolean): Promise<unknown> {
    try {
      return await method.call(params, uri)
    } catch (err) {
      if (err instanceof RpcError) throw err
      if (err instanceof InvalidInputError) throw invalidParams(err.message)
      log.error('rpc method failed', { method: name, err })
      throw internal((err as Error).message)
    }
  }

  async function handleGet(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const u = new URL(req.url ?? '/', 'http://x')
    if (u.pathname === '/') {
      listEndpoints(res)
      return
    }
    const name = u.pathname.slice(1)
    const method = methods.get(name)
    try {
      if (method === undefined) throw methodNotFound(name)
      reply(res, 200, {
        jsonrpc: '2.0',
        id: URI_ID,
        result: await call(method, name, queryParams(u.searchParams), true)
      })
    } catch (err) {
      const e = err instanceof RpcError ? err : internal((err as Error).message)
      reply(res, uriStatus(e), errorJson(URI_ID, e))
    }
  }

  function listEndpoints(res: ServerResponse): void {
    const lines = [...methods].map(
      ([name, m]) => `/${name}${m.params.length === 0 ? '' : '?' + m.params.map(p => `${p}=_`).join('&')}`
    )
    const text = `Available endpoints (GET, or JSON-RPC 2.0 POST to /):\n${lines.join('\n')}\n`
    res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(text) })
    res.end(text)
  }

  /** One JSON-RPC request: its answer, or undefined for a notification. */
  async function answer(r: ParsedRequest): Promise<Record<string, unknown> | undefined> {
    if (!r.ok) return errorJson(r.id, r.error)
    let result: unknown
    try {
      const method = methods.get(r.method)
      if (method === undefined) throw methodNotFound(r.method)
      result = await call(method, r.method, bindParams(r.params, method.params), false)
    } catch (err) {
      if (r.notification) return undefined
      return errorJson(r.id, err instanceof RpcError ? err : internal((err as Error).message))
    }
    return r.notification ? undefined : { jsonrpc: '2.0', id: r.id, result }
  }

  async function handlePost(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const text = await readBody(req, res, limits, budget)
    if (text === undefined) return
    if (jsonDepthExceeds(text, MAX_JSON_DEPTH)) {
      reply(res, 400, errorJson(null, invalidRequest(`JSON nested deeper than ${MAX_JSON_DEPTH} levels`)))
      return
    }
    let body: unknown
    try {
      body = JSON.parse(text)
    } catch {
      reply(res, 400, errorJson(null, parseError('the body is not JSON')))
      return
    }
    if (!Array.isArray(body)) {
      const r = parseRequest(body)
      if (!r.ok) {
        reply(res, 400, errorJson(r.id, r.error))
        return
      }
      const out = await answer(r)
      if (out === undefined) {
        res.writeHead(204).end()
        return
      }
      reply(res, 200, out)
      return
    }
    const maxBatch = Math.min(MAX_BATCH, limits.maxBatch)
    if (body.length === 0 || body.length > maxBatch) {
      // worded as CometBFT words it too, so a client learns the limit from either
      const e = `a batch holds 1 to ${maxBatch} requests${body.length === 0 ? '' : `: batch request exceeds maximum (${maxBatch}) allowed number of requests`}`
      reply(res, 400, errorJson(null, invalidRequest(e)))
      return
    }
    const outs = (await Promise.all(body.map(async b => await answer(parseRequest(b))))).filter(o => o !== undefined)
    if (outs.length === 0) {
      res.writeHead(204).end()
      return
    }
    reply(res, 200, outs)
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.method === 'GET') await handleGet(req, res)
    else if (req.method === 'POST' && new URL(req.url ?? '/', 'http://x').pathname === '/') await handlePost(req, res)
    else refuse(res, 405, invalidRequest('use POST / with JSON-RPC 2.0, or GET /<method>'), { allow: 'GET, POST' })
  }

  const server: Server = createServer((req, res) => {
    handle(req, res).catch(err => {
      log.error('rpc', { err })
      if (!res.headersSent) reply(res, 500, errorJson(null, internal((err as Error).message)))
      else res.destroy()
    })
  })
  server.maxConnections = limits.maxConnections
  server.requestTimeout = limits.requestTimeoutMs
  server.headersTimeout = Math.min(server.headersTimeout, limits.requestTimeoutMs)
  server.keepAliveTimeout = 60_000
  await listen(server, opts.listen)
  const addr = server.address() as AddressInfo
  url = `http://${addr.family === 'IPv6' ? `[${addr.address}]` : addr.address}:${addr.port}`
  return {
    url,
    port: addr.port,
    close: async () => {
      server.closeAllConnections()
      await new Promise<void>(resolve => server.close(() => resolve()))
    }
  }
}

async function listen(server: Server, address: string): Promise<void> {
  const i = address.lastIndexOf(':')
  const host = i < 0 ? '127.0.0.1' : address.slice(0, i).replace(/^\[|\]$/g, '')
  const port = Number(i < 0 ? address : address.slice(i + 1))
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new InvalidInputError(`bad RPC listen address ${address} (expected host:port)`)
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => {
      server.off('error', reject)
      resolve()
    })
  })
}
