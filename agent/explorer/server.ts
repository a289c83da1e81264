// The network explorer: a read-only web UI over the chain (`quorate explorer`, and the agent's
// /ui). It follows the chain through any RPC (ChainIndex), serves a bundled single-page app with
// no asset from anywhere else, and pushes a server-sent event when a block changes the snapshot,
// so pages update without reload.
//
//   GET /            the page (also /index.html)        GET /api/snapshot  the current snapshot
//   GET /app.js      the bundle built by setup          GET /api/events    SSE: `snapshot` {height}
//   GET /api/local   the serving agent's own node (event logs, apps, tenants); 404 without one
//
// Lazy (the agent's /ui): nothing is read from the chain until the first request, and polling
// stops once no page has asked for `idleMs` and no event stream is open, so an agent nobody
// looks at pays nothing; the next request starts it again where it left off.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { readFileSync, statSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { ConfigError, TransientError } from '../../encoding/errors.ts'
import { jsonReplacer, type Logger } from '../../encoding/log.ts'
import { ChainIndex, type ExplorerChain, type Snapshot } from './indexer.ts'
import type { LocalView } from './types.ts'

/** Where setup's build (esbuild, scripts/build-ui.ts) puts the page's script. */
export const UI_BUNDLE = join(dirname(fileURLToPath(import.meta.url)), 'dist', 'app.js')

export class UiNotBuiltError extends ConfigError {
  override readonly code: string = 'ERR_UI_NOT_BUILT'
}

export interface ExplorerInit {
  readonly chain: ExplorerChain
  readonly logger: Logger
  /** How often the chain's height is checked (ms). */
  readonly pollMs?: number
  /** At most this many open event streams; more get 503. */
  readonly maxStreams?: number
  /** Start reading the chain at the first request and stop `idleMs` after the last (the agent's /ui). */
  readonly lazy?: { readonly idleMs: number }
  /** The serving agent's own node (GET /api/local). */
  readonly local?: () => Promise<LocalView>
}

export interface Explorer {
  readonly index: ChainIndex
  /** Whether it is following the chain now (always, unless lazy and idle). */
  readonly polling: boolean
  /** Called whenever polling starts or stops (lazy explorers). */
  onPolling(fn: (polling: boolean) => void): () => void
  /** Handles a request whose path has already had any mount prefix removed. */
  handle(req: IncomingMessage, res: ServerResponse, path: string): void
  /** Resolves when the first snapshot exists. */
  ready(opts?: { signal?: AbortSignal }): Promise<Snapshot>
  stop(): Promise<void>
}

const PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>quorate explorer</title>
<meta http-equiv="Content-Security-Policy" content="default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'">
</head><body><div id="app"><p>Loading the network…</p></div><script type="module" src="app.js"></script></body></html>`

function loadBundle(): Buffer {
  try {
    const st = statSync(UI_BUNDLE)
    if (!st.isFile() || st.size > 8 << 20) throw new UiNotBuiltError('not a regular file of at most 8 MiB')
    return readFileSync(UI_BUNDLE)
  } catch (err) {
    throw new UiNotBuiltError(
      `the explorer's page script (${UI_BUNDLE}) is missing or unreadable; run \`npm run setup\` to build it`,
      { cause: err }
    )
  }
}

export function createExplorer(init: ExplorerInit): Explorer {
  // a lazy explorer (inside an agent) must not stop the agent for want of the page: it says so on request
  let bundle: Buffer | undefined = init.lazy === undefined ? loadBundle() : undefined
  const index = new ChainIndex(init.chain)
  const streams = new Set<ServerResponse>()
  const maxStreams = init.maxStreams ?? 64
  const log = init.logger
  let lastError: string | undefined
  let stopped = false
  const waiters = new Set<() => void>()

  const push = (event: string, data: unknown): void => {
    const frame = `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`
    for (const s of streams) s.write(frame)
  }

  let timer: NodeJS.Timeout | undefined
  let polling = false
  let lastRequest = 0
  const pollWatchers = new Set<(p: boolean) => void>()
  const setPolling = (p: boolean): void => {
    if (p === polling) return
    polling = p
    for (const w of pollWatchers) w(p)
    if (!p) for (const w of waiters) w() // a ready() waiting on an explorer that went idle ends
  }
  const idle = (): boolean =>
    init.lazy !== undefined && streams.size === 0 && Date.now() - lastRequest >= init.lazy.idleMs
  const poll = async (): Promise<void> => {
    try {
      if (await index.refresh()) {
        lastError = undefined
        const s = index.snapshot
        if (s !== undefined) push('snapshot', { height: s.height })
        for (const w of waiters) w()
      }
    } catch (err) {
      const msg = (err as Error).message
      if (msg !== lastError) log.warn('chain not readable', { err })
      lastError = msg
      push('chain-error', { message: msg })
    } finally {
      timer = undefined
      if (stopped || idle()) {
        setPolling(false)
        if (!stopped) log.debug('no viewer: stopped following the chain')
      } else
        timer = setTimeout(() => {
          void poll()
        }, init.pollMs ?? 500)
    }
  }
  const wake = (): void => {
    lastRequest = Date.now()
    if (polling || stopped) return
    setPolling(true)
    if (init.lazy !== undefined) log.debug('a viewer: following the chain')
    void poll()
  }
  if (init.lazy === undefined) wake()

  const json = (res: ServerResponse, code: number, body: unknown): void => {
    const text = JSON.stringify(body, jsonReplacer)
    res.writeHead(code, {
      'content-type': 'application/json',
      'cache-control': 'no-store',
      'content-length': Buffer.byteLength(text)
    })
    res.end(text)
  }

  const handle = (req: IncomingMessage, res: ServerResponse, path: string): void => {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end('read-only\n')
      return
    }
    wake()
    switch (path) {
      case '/':
      case '/index.html':
        res.writeHead(200, {
          'content-type': 'text/html; charset=utf-8',
          'content-length': Buffer.byteLength(PAGE),
          'x-content-type-options': 'nosniff'
        })
        res.end(PAGE)
        return
      case '/app.js':
        try {
          bundle ??= loadBundle()
        } catch (err) {
          res.writeHead(503, { 'content-type': 'text/plain' }).end(`${(err as Error).message}\n`)
          return
        }
        res.writeHead(200, {
          'content-type': 'text/javascript; charset=utf-8',
          'content-length': bundle.length,
          'cache-control': 'no-cache'
        })
        res.end(bundle)
        return
      case '/api/snapshot': {
        const s = index.snapshot
        if (s === undefined) {
          json(res, 503, { error: lastError ?? 'the explorer has not read the chain yet', retryAfter: 1 })
          return
        }
        json(res, 200, { ...s, chainError: lastError })
        return
      }
      case '/api/local': {
        if (init.local === undefined) {
          json(res, 404, { error: 'this explorer is not served by an agent' })
          return
        }
        init.local().then(
          v => {
            json(res, 200, v)
          },
          (err: unknown) => {
            json(res, 503, { error: (err as Error).message })
          }
        )
        return
      }
      case '/api/events': {
        if (streams.size >= maxStreams) {
          res.writeHead(503, { 'retry-after': '5' }).end('too many event streams\n')
          return
        }
        res.writeHead(200, {
          'content-type': 'text/event-stream',
          'cache-control': 'no-store',
          connection: 'keep-alive'
        })
        res.write(`retry: 2000\nevent: hello\ndata: ${JSON.stringify({ height: index.snapshot?.height ?? 0 })}\n\n`)
        streams.add(res)
        const drop = (): void => {
          streams.delete(res)
          lastRequest = Date.now()
        }
        req.on('close', drop)
        res.on('error', drop)
        return
      }
      default:
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n')
    }
  }

  return {
    index,
    get polling() {
      return polling
    },
    onPolling(fn) {
      pollWatchers.add(fn)
      return () => {
        pollWatchers.delete(fn)
      }
    },
    handle,
    async ready(opts = {}) {
      for (;;) {
        const s = index.snapshot
        if (s !== undefined) return s
        opts.signal?.throwIfAborted()
        if (stopped) throw new TransientError('explorer stopped before it read the chain')
        if (!polling) throw new TransientError('explorer is idle: nothing has asked for a page')
        await new Promise<void>(resolve => {
          const done = (): void => {
            waiters.delete(done)
            opts.signal?.removeEventListener('abort', done)
            resolve()
          }
          waiters.add(done)
          opts.signal?.addEventListener('abort', done, { once: true })
        })
      }
    },
    async stop() {
      stopped = true
      clearTimeout(timer)
      setPolling(false)
      for (const s of streams) s.end()
      streams.clear()
      for (const w of waiters) w()
    }
  }
}

export interface ExplorerServer {
  readonly url: string
  readonly explorer: Explorer
  stop(): Promise<void>
}

/** `quorate explorer`: the explorer on its own HTTP listener (127.0.0.1 unless told otherwise). */
export async function startExplorerServer(init: ExplorerInit & { listen: string }): Promise<ExplorerServer> {
  const m = /^(.*):(\d{1,5})$/.exec(init.listen)
  if (m === null || Number(m[2]) > 65535)
    throw new ConfigError(`--listen: expected HOST:PORT, got ${JSON.stringify(init.listen)}`)
  const host = m[1].replace(/^\[(.*)\]$/, '$1')
  const explorer = createExplorer(init)
  const server: Server = createServer((req, res) => {
    explorer.handle(req, res, (req.url ?? '/').split('?')[0])
  })
  server.headersTimeout = 10_000
  server.requestTimeout = 30_000
  server.maxConnections = 256
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(Number(m[2]), host, () => {
        server.off('error', reject)
        resolve()
      })
    })
  } catch (err) {
    await explorer.stop()
    throw new ConfigError(`--listen ${init.listen}: ${(err as Error).message}`, { cause: err })
  }
  const a = server.address() as AddressInfo
  const url = `http://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}/`
  return {
    url,
    explorer,
    async stop() {
      await explorer.stop()
      server.closeAllConnections()
      await new Promise<void>(resolve => server.close(() => resolve()))
    }
  }
}
