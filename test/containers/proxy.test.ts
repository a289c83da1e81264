// The tenant proxy against a plain node:http upstream (unit test of one module: no Docker).
import t from 'tap'
import { createServer, request, type IncomingMessage, type Server } from 'node:http'
import { randomBytes, createHash } from 'node:crypto'
import { createTenantProxy } from '../../containers/proxy.ts'
import type { CertificationStatus } from '../../containers/runner.ts'
import { freePort } from './helpers.ts'

const servers: Server[] = []
t.teardown(() => { for (const s of servers) { s.closeAllConnections(); s.close() } })

async function listen (s: Server): Promise<number> {
  servers.push(s)
  await new Promise<void>(resolve => s.listen(0, '127.0.0.1', resolve))
  return (s.address() as { port: number }).port
}

let sunk = 0
// upstream: /echo streams the body back with its sha256 as a header; /slow never answers;
// /headers returns what it received.
const upstream = createServer((req, res) => {
  if (req.url?.startsWith('/echo') === true) {
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'x-path': req.url })
    req.pipe(res)
    return
  }
  if (req.url === '/slow') return
  if (req.url === '/sink') {
    let n = 0
    req.on('data', (c: Buffer) => { n += c.byteLength; sunk = Math.max(sunk, n) })
    req.on('end', () => { res.end(String(n)) })
    return
  }
  res.writeHead(200, { 'content-type': 'application/json', connection: 'close', 'x-custom': 'kept' })
  res.end(JSON.stringify(req.headers))
})
const upstreamPort = await listen(upstream)

let cert: CertificationStatus = { certified: true }
const proxy = createTenantProxy({
  certification: () => cert,
  resolve: name => name === 'app' ? { port: upstreamPort } : name === 'down' ? { port: deadPort } : undefined,
  maxBodyBytes: 1 << 20,
  maxConcurrent: 2,
  responseTimeoutMs: 300
})
const deadPort = await freePort()
const port = await listen(createServer(proxy.handler))

function call (method: string, path: string, body?: Uint8Array | AsyncIterable<Uint8Array>, headers: Record<string, string> = {}): Promise<{ status: number, body: Buffer, headers: IncomingMessage['headers'] }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, headers }, res => {
      const parts: Buffer[] = []
      res.on('data', (c: Buffer) => parts.push(c))
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, body: Buffer.concat(parts), headers: res.headers }) })
      res.on('error', reject)
    })
    req.on('error', reject)
    if (body instanceof Uint8Array) req.end(body)
    else if (body !== undefined) {
      void (async () => { for await (const c of body) if (!req.write(c)) await new Promise(resolve => req.once('drain', resolve)); req.end() })().catch(reject)
    } else req.end()
  })
}

t.test('streams bodies both ways, maps the path, forwards end-to-end headers only', async t => {
  const body = randomBytes(900_000)
  const r = await call('POST', '/tenant/app/echo?x=1', (async function * () { for (let i = 0; i < body.length; i += 65536) yield body.subarray(i, i + 65536) })())
  t.equal(r.status, 200)
  t.equal(createHash('sha256').update(r.body).digest('hex'), createHash('sha256').update(body).digest('hex'))
  t.equal(r.headers['x-path'], '/echo?x=1')
  const h = await call('GET', '/tenant/app/headers', undefined, { 'x-tenant': 'a', connection: 'keep-alive, x-drop', 'x-drop': 'secret' })
  const seen = JSON.parse(h.body.toString()) as Record<string, string>
  t.equal(seen['x-tenant'], 'a')
  t.notOk('x-drop' in seen, 'headers named in Connection are dropped')
  t.equal(seen['x-forwarded-for'], '127.0.0.1')
  t.equal(h.headers['x-custom'], 'kept')
  t.equal((await call('GET', '/tenant/app')).status, 200, 'no trailing path → /')
})

t.test('limits: body size, response time, concurrency; errors as status codes', async t => {
  const big = randomBytes((1 << 20) + 1)
  t.equal((await call('POST', '/tenant/app/echo', big)).status, 413, 'declared length too large')
  // A chunked body over the limit: 413 (or the connection cut while the client still writes),
  // and the container never sees more than the limit.
  const streamed = await call('POST', '/tenant/app/sink', (async function * () { for (let i = 0; i < big.length; i += 65536) yield big.subarray(i, i + 65536) })()).catch((err: Error) => ({ status: 0, err }))
  t.ok(streamed.status === 413 || streamed.status === 0, `chunked body over the limit is refused (status ${streamed.status})`)
  t.ok(sunk <= 1 << 20, `upstream received at most the limit (${sunk} bytes)`)
  t.equal((await call('GET', '/tenant/app/slow')).status, 504, 'no answer in time → 504')
  t.equal((await call('GET', '/tenant/down/')).status, 502, 'container unreachable → 502')
  t.equal((await call('GET', '/tenant/missing/')).status, 404)
  t.equal((await call('GET', '/other')).status, 404)
  // two slow requests fill the limit of 2; the third is turned away
  const p1 = call('GET', '/tenant/app/slow'); const p2 = call('GET', '/tenant/app/slow')
  await new Promise(resolve => setTimeout(resolve, 50))
  t.equal(proxy.inFlight, 2)
  t.equal((await call('GET', '/tenant/app/headers')).status, 503, 'over the concurrency limit')
  await Promise.all([p1, p2])
  t.equal(proxy.inFlight, 0, 'slots released')
})

t.test('503 with the reason while the node is not certified', async t => {
  cert = { certified: false, reason: 'certification expired' }
  const r = await call('GET', '/tenant/app/headers')
  t.equal(r.status, 503)
  t.same(JSON.parse(r.body.toString()), { error: 'node not certified', reason: 'certification expired' })
  cert = { certified: true }
  t.equal((await call('GET', '/tenant/app/headers')).status, 200)
})
