// The proxy's additions for serverless apps (unit test of one module: a node:http upstream, no
// Docker): upstream connections are kept alive, a target may be resolved asynchronously, a
// resolver's refusal is answered with its status and Retry-After, and each request's bytes are
// accounted once.
import t from 'tap'
import { createServer, type Server } from 'node:http'
import { createServer as createNetServer } from 'node:net'
import { createTenantProxy, type ProxyTarget } from '../../containers/proxy.ts'

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

let connections = 0
const upstream = createServer((req, res) => {
  let n = 0
  req.on('data', (c: Buffer) => {
    n += c.byteLength
  })
  req.on('end', () => {
    res.writeHead(200, { 'content-type': 'text/plain' })
    res.end(`got ${n} bytes at ${req.url ?? ''}`)
  })
})
upstream.on('connection', () => {
  connections++
})
const port = await listen(upstream)

const accounted: Array<[string, number, number]> = []
let pending: ((t: ProxyTarget) => void) | undefined
const proxy = createTenantProxy({
  prefix: '/app/',
  certification: () => ({ certified: true }),
  resolve: name => {
    if (name === 'warm') return { port }
    if (name === 'cold')
      return new Promise<ProxyTarget>(resolve => {
        pending = resolve
      })
    if (name === 'gone') throw Object.assign(new Error('app "gone" is revoked on chain'), { status: 410 })
    if (name === 'busy') return Promise.reject(Object.assign(new Error('queue full'), { status: 503, retryAfter: 1 }))
    if (name === 'broken') return Promise.reject(new Error('docker down'))
    return undefined
  },
  account: (name, bytesIn, bytesOut) => {
    accounted.push([name, bytesIn, bytesOut])
  }
})
t.teardown(() => {
  proxy.close()
})
const front = createServer(proxy.handler)
const base = `http://127.0.0.1:${await listen(front)}`

t.test('upstream connections are kept alive across requests', async t => {
  connections = 0
  for (let i = 0; i < 20; i++) {
    const res = await fetch(`${base}/app/warm/x${i}`)
    t.equal(res.status, 200)
    t.equal(await res.text(), `got 0 bytes at /x${i}`)
  }
  t.equal(connections, 1, '20 sequential requests, one upstream connection')
})

t.test('an asynchronous target: the request waits for it, then is forwarded', async t => {
  const res = fetch(`${base}/app/cold/hello`, { method: 'POST', body: 'abcdef' })
  // the proxy asked for the target (the request arrived); nothing went upstream yet
  while (pending === undefined) await new Promise(resolve => setImmediate(resolve))
  pending?.({ port })
  const r = await res
  t.equal(r.status, 200)
  t.equal(await r.text(), 'got 6 bytes at /hello', 'the body waited too')
})

t.test("a resolver's refusal is answered with its status", async t => {
  const gone = await fetch(`${base}/app/gone/`)
  t.equal(gone.status, 410)
  t.match(await gone.json(), { error: /revoked/ })
  const busy = await fetch(`${base}/app/busy/`)
  t.equal(busy.status, 503)
  t.equal(busy.headers.get('retry-after'), '1')
  const broken = await fetch(`${base}/app/broken/`)
  t.equal(broken.status, 502, 'an error without a status is a 502')
  t.match(await broken.json(), { error: /docker down/ })
  t.equal((await fetch(`${base}/app/none/`)).status, 404)
})

t.test('bytes in and out are accounted once per forwarded request', async t => {
  accounted.length = 0
  const r = await fetch(`${base}/app/warm/a`, { method: 'POST', body: 'x'.repeat(1000) })
  const text = await r.text()
  // accounted when the response closes, just after the client has it
  while (accounted.length === 0) await new Promise(resolve => setImmediate(resolve))
  t.same(accounted, [['warm', 1000, Buffer.byteLength(text)]])
  await fetch(`${base}/app/gone/`)
  t.equal(accounted.length, 1, 'refused requests are not accounted')
})

t.test('a kept-alive connection the container closed is retried on a new one for a bodiless request', async t => {
  // each connection answers its first request (keep-alive) and drops the second unanswered, as a
  // server whose idle timeout ended just as the proxy reused the connection
  let conns = 0
  const flaky = createNetServer(sock => {
    conns++
    let requests = 0
    let buf = ''
    sock.on('data', (c: Buffer) => {
      buf += c.toString('latin1')
      while (buf.includes('\r\n\r\n')) {
        const head = buf.slice(0, buf.indexOf('\r\n\r\n'))
        const len = Number(/content-length: *(\d+)/i.exec(head)?.[1] ?? 0)
        buf = buf.slice(head.length + 4 + len)
        if (++requests > 1) {
          sock.destroy()
          return
        }
        sock.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: keep-alive\r\n\r\nok')
      }
    })
    sock.on('error', () => {})
  })
  const flakyPort = await new Promise<number>(resolve => {
    flaky.listen(0, '127.0.0.1', () => {
      resolve((flaky.address() as { port: number }).port)
    })
  })
  t.teardown(() => {
    flaky.close()
  })
  const p = createTenantProxy({ certification: () => ({ certified: true }), resolve: () => ({ port: flakyPort }) })
  t.teardown(() => {
    p.close()
  })
  const fr = createServer(p.handler)
  const url = `http://127.0.0.1:${await listen(fr)}`
  for (let i = 0; i < 3; i++) {
    const r = await fetch(`${url}/tenant/x/get${i}`)
    t.equal(r.status, 200, `GET ${i} served`)
    t.equal(await r.text(), 'ok')
  }
  t.equal(conns, 3, 'each dropped reuse went to a new connection')
  const post = await fetch(`${url}/tenant/x/post`, { method: 'POST', body: 'data' })
  t.equal(post.status, 502, 'a request with a body is not sent twice')
})
