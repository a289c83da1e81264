// Test helper: an HTTP proxy in front of a real chain RPC that can change what it answers — the
// "lying RPC endpoint" of the light client tests. `lie(method, params, result)` gets each JSON-RPC
// call's method, params and the real result, and returns what to answer (the same result = honest).
import { createServer, request, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'

export type Lie = (method: string, params: Record<string, unknown>, result: unknown) => unknown | Promise<unknown>

export interface LyingProxy {
  readonly url: string
  /** Replaces the rewrite (undefined: answer honestly). */
  lie: Lie | undefined
  /** Calls seen, by method. */
  readonly calls: Map<string, number>
  close(): Promise<void>
}

function forward(upstream: URL, body: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request(
      upstream,
      { method: 'POST', headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } },
      res => {
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => chunks.push(c))
        res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')))
        res.on('error', reject)
      }
    )
    req.on('error', reject)
    req.end(body)
  })
}

export async function startLyingProxy(upstreamUrl: string, lie?: Lie): Promise<LyingProxy> {
  const upstream = new URL(upstreamUrl)
  const calls = new Map<string, number>()
  const proxy: { lie: Lie | undefined } = { lie }
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      void (async () => {
        const body = Buffer.concat(chunks).toString('utf8')
        const answer = await forward(upstream, body)
        const call = JSON.parse(body) as { method: string; params?: Record<string, unknown> }
        calls.set(call.method, (calls.get(call.method) ?? 0) + 1)
        let out = answer
        const j = JSON.parse(answer) as { result?: unknown }
        if (proxy.lie !== undefined && j.result !== undefined) {
          j.result = await proxy.lie(call.method, call.params ?? {}, j.result)
          out = JSON.stringify(j)
        }
        res.writeHead(200, { 'content-type': 'application/json' })
        res.end(out)
      })().catch((err: unknown) => {
        res.writeHead(502)
        res.end(String(err))
      })
    })
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as AddressInfo).port
  return {
    url: `http://127.0.0.1:${port}`,
    get lie() {
      return proxy.lie
    },
    set lie(l) {
      proxy.lie = l
    },
    calls,
    close: () =>
      new Promise(resolve => {
        server.closeAllConnections()
        server.close(() => resolve())
      })
  }
}

/** A deep copy of parsed JSON, to edit. */
export const clone = <T>(v: T): T => JSON.parse(JSON.stringify(v)) as T
