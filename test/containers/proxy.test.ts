// The tenant proxy against a plain node:http upstream (unit test of one module: no Docker).
import t from 'tap'
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { randomBytes, createHash } from 'node:crypto'
import { EventEmitter, once } from 'node:events'
import { createTenantProxy } from '../../containers/proxy.ts'
import type { CertificationStatus } from '../../containers/runner.ts'
import { freePort } from './helpers.ts'

const servers: Server[] = []
t.teardown(() => {
  for (const s of servers) {
    s.closeAllConnections()
    s.close()
  }
})

async function listen(s: Server): Promise<number> {
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
    req.on('data', (c: Buffer) => {
      n += c.byteLength
      sunk = Math.max(sunk, n)
    })
    req.on('end', () => {
      res.end(String(n))
    })
    return
  }
  res.writeHead(200, { 'content-type': 'application/json', connection: 'close', 'x-custom': 'kept' })
  res.end(JSON.stringify(req.headers))
})
const upstreamPort = await listen(upstream)

/** An upstream that holds every request until release(); `arrived(n)` waits until n came in. */
async function holdingUpstream(): Promise<{
  port: number
  held: ServerResponse[]
  arrived: (n: number) => Promise<void>
  release: () => void
}> {
  const held: ServerResponse[] = []
  const events = new EventEmitter()
  const port = await listen(
    createServer((req, res) => {
      held.push(res)
      events.emit('arrived')
    })
  )
  return {
    port,
    held,
    arrived: async n => {
      while (held.length < n) await once(events, 'arrived')
    },
    release: () => {
      for (const r of held.splice(0)) r.end('released')
    }
  }
}

/** Starts requests and lets a test wait until a number of them have been answered. */
function tracked(): { start: (p: Promise<Reply>) => Promise<Reply>; settled: (n: number) => Promise<void> } {
  let done = 0
  const events = new EventEmitter()
  return {
    start: p => {
      void p.then(
        () => {
          done++
          events.emit('settled')
        },
        () => {
          done++
          events.emit('settled')
        }
      )
      return p
    },
    settled: async n => {
      while (done < n) await once(events, 'settled')
    }
  }
}

const held = await holdingUpstream()

let cert: CertificationStatus = { certified: true }
const proxy = createTenantProxy({
  certification: () => cert,
  resolve: name => (name === 'app' ? { port: upstreamPort } : name === 'down' ? { port: deadPort } : undefined),
  maxBodyBytes: 1 << 20,
  maxConcurrent: 2,
  responseTimeoutMs: 300
})
const deadPort = await freePort()
const port = await listen(createServer(proxy.handler))

interface Reply {
  status: number
  body: Buffer
  headers: IncomingMessage['headers']
}

function call(
  method: string,
  path: string,
  body?: Uint8Array | AsyncIterable<Uint8Array>,
  headers: Record<string, string> = {},
  to = port
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: to, method, path, headers }, res => {
      const parts: Buffer[] = []
      res.on('data', (c: Buffer) => parts.push(c))
      res.on('end', () => {
        resolve({ status: res.statusCode ?? 0, body: Buffer.concat(parts), headers: res.headers })
      })
      res.on('error', reject)
    })
    req.on('error', reject)
    if (body instanceof Uint8Array) req.end(body)
    else if (body !== undefined) {
      void (async () => {
        for await (const c of body) if (!req.write(c)) await new Promise(resolve => req.once('drain', resolve))
        req.end()
      })().catch(reject)
    } else req.end()
  })
}

t.test('streams bodies both ways, maps the path, forwards end-to-end headers only', async t => {
  const body = randomBytes(900_000)
  const r = await call(
    'POST',
    '/tenant/app/echo?x=1',
    (async function* () {
      for (let i = 0; i < body.length; i += 65536) yield body.subarray(i, i + 65536)
    })()
  )
  t.equal(r.status, 200)
  t.equal(createHash('sha256').update(r.body).digest('hex'), createHash('sha256').update(body).digest('hex'))
  t.equal(r.headers['x-path'], '/echo?x=1')
  const h = await call('GET', '/tenant/app/headers', undefined, {
    'x-tenant': 'a',
    connection: 'keep-alive, x-drop',
    'x-drop': 'secret'
  })
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
  const streamed = await call(
    'POST',
    '/tenant/app/sink',
    (async function* () {
      for (let i = 0; i < big.length; i += 65536) yield big.subarray(i, i + 65536)
    })()
  ).catch((err: Error) => ({ status: 0, err }))
  t.ok(
    streamed.status === 413 || streamed.status === 0,
    `chunked body over the limit is refused (status ${streamed.status})`
  )
  t.ok(sunk <= 1 << 20, `upstream received at most the limit (${sunk} bytes)`)
  t.equal((await call('GET', '/tenant/app/slow')).status, 504, 'no answer in time → 504')
  t.equal((await call('GET', '/tenant/down/')).status, 502, 'container unreachable → 502')
  t.equal((await call('GET', '/tenant/missing/')).status, 404)
  t.equal((await call('GET', '/other')).status, 404)
  // two held requests (two tenants: alone, one may take only half the node) fill a node limit
  // of 2; a third is turned away (this proxy's response timeout is the default 30 s, so the held
  // requests stay in flight however slowly the test runs)
  const small = createTenantProxy({
    certification: () => ({ certified: true }),
    resolve: n => (n === 'app' ? { port: upstreamPort } : { port: held.port }),
    maxConcurrent: 2
  })
  const at = await listen(createServer(small.handler))
  const p1 = call('GET', '/tenant/held/1', undefined, {}, at)
  const p2 = call('GET', '/tenant/held2/2', undefined, {}, at)
  await held.arrived(2)
  t.equal(small.inFlight, 2)
  t.equal(small.inFlightOf('held'), 1)
  const over = await call('GET', '/tenant/app/headers', undefined, {}, at)
  t.equal(over.status, 503, 'over the concurrency limit')
  t.equal(over.headers['retry-after'], '1')
  t.match(JSON.parse(over.body.toString()), {
    error: 'too many requests in flight',
    reason: /the node has 2 requests in flight/
  })
  held.release()
  t.same(
    (await Promise.all([p1, p2])).map(r => r.status),
    [200, 200]
  )
  t.equal(small.inFlight, 0, 'slots released')
  t.equal(small.inFlightOf('held'), 0)
  t.equal(proxy.inFlight, 0, 'and the 504 and 502 above released theirs')
})

t.test('a slow tenant does not starve the others: per-tenant limits, fair share of the node', async t => {
  // the defaults (64 on the node, 16 per tenant), two real upstreams: one holds every request
  const slow = await holdingUpstream()
  const healthy = await listen(
    createServer((req, res) => {
      res.end('healthy')
    })
  )
  const p = createTenantProxy({
    certification: () => ({ certified: true }),
    resolve: n => (n === 'slow' ? { port: slow.port } : n === 'healthy' ? { port: healthy } : undefined)
  })
  const at = await listen(createServer(p.handler))
  const tr = tracked()
  const flood = Array.from(
    { length: 80 },
    async (_, i) => await tr.start(call('GET', `/tenant/slow/${i}`, undefined, {}, at))
  )
  await slow.arrived(16)
  await tr.settled(64)
  t.equal(p.inFlightOf('slow'), 16, 'the slow tenant holds its own limit, no more')
  const answers = await Promise.all(
    Array.from({ length: 10 }, async () => await call('GET', '/tenant/healthy/', undefined, {}, at))
  )
  t.same(
    answers.map(r => r.status),
    Array(10).fill(200),
    'the healthy tenant answers 200 during 80 held requests'
  )
  t.equal(answers[0].body.toString(), 'healthy')
  slow.release()
  const all = await Promise.all(flood)
  t.equal(all.filter(r => r.status === 200).length, 16)
  const refused = all.filter(r => r.status === 503)
  t.equal(refused.length, 64)
  t.ok(
    refused.every(r => r.headers['retry-after'] === '1'),
    'every 503 carries Retry-After'
  )
  t.match(JSON.parse(refused[0].body.toString()), {
    error: 'too many requests in flight',
    reason: /tenant "slow" has 16 requests in flight, its limit/
  })
  t.same(p.refused(), { tenant: 64, node: 0, share: 0 }, 'refusals counted by the limit that refused them')
  t.equal(p.inFlight, 0)

  // a small node (8 slots, one tenant may take all 8 when alone): once half is in use, two held
  // tenants keep to their share, so a third still finds a slot
  const a = await holdingUpstream()
  const b = await holdingUpstream()
  const q = createTenantProxy({
    certification: () => ({ certified: true }),
    resolve: n =>
      n === 'a' ? { port: a.port } : n === 'b' ? { port: b.port } : n === 'c' ? { port: healthy } : undefined,
    maxConcurrent: 8,
    maxPerTenant: 8
  })
  const qat = await listen(createServer(q.handler))
  const ta = tracked()
  const fa = Array.from(
    { length: 10 },
    async (_, i) => await ta.start(call('GET', `/tenant/a/${i}`, undefined, {}, qat))
  )
  await a.arrived(4)
  await ta.settled(6)
  t.equal(q.inFlightOf('a'), 4, 'alone, a tenant keeps half the node free for others')
  const tb = tracked()
  const fb = Array.from(
    { length: 10 },
    async (_, i) => await tb.start(call('GET', `/tenant/b/${i}`, undefined, {}, qat))
  )
  await b.arrived(2)
  await tb.settled(8)
  t.equal(q.inFlightOf('b'), 2, 'the second held tenant gets its share of what is left')
  const c = await call('GET', '/tenant/c/', undefined, {}, qat)
  t.equal(c.status, 200, 'a third tenant is served')
  a.release()
  b.release()
  const refusedB = (await Promise.all(fb)).filter(r => r.status === 503)
  t.match(JSON.parse(refusedB[0].body.toString()), { reason: /node is busy .* holds its share \(2\)/ })
  t.equal((await Promise.all(fa)).filter(r => r.status === 200).length, 4)
  t.same(q.refused(), { tenant: 0, node: 0, share: 14 })
  t.equal(q.inFlight, 0)
})

t.test('bad limits are refused', async t => {
  const base = { certification: () => ({ certified: true }), resolve: () => undefined }
  t.throws(() => createTenantProxy({ ...base, maxConcurrent: 0 }), /maxConcurrent must be a positive integer/)
  t.throws(() => createTenantProxy({ ...base, maxPerTenant: 1.5 }), /maxPerTenant must be a positive integer/)
  t.throws(() => createTenantProxy({ ...base, maxConcurrent: 4, maxPerTenant: 5 }), /exceeds maxConcurrent/)
})

t.test('503 with the reason while the node is not certified', async t => {
  cert = { certified: false, reason: 'certification expired' }
  const r = await call('GET', '/tenant/app/headers')
  t.equal(r.status, 503)
  t.same(JSON.parse(r.body.toString()), { error: 'node not certified', reason: 'certification expired' })
  cert = { certified: true }
  t.equal((await call('GET', '/tenant/app/headers')).status, 200)
})
