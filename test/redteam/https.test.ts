// Red team (issue 14): the node's HTTPS listener (agent/tls.ts startHttpsApi) under connection
// floods. One address holding its whole share with half-open connections cannot take more, and
// a client from another address is still served; a handshake that never completes is closed by
// the server (handshakeTimeout); a connection made while the key is not bound by the chain is
// closed before the handshake, so the server never signs with that key; a client trickling its
// headers is closed about when headersTimeout says (not up to 30 s later); one address opening
// connections faster than its handshake rate is refused before the handshake.
import t from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { connect as netConnect, type Socket } from 'node:net'
import { connect as tlsConnect, type TLSSocket } from 'node:tls'
import { loadTlsIdentity, startHttpsApi, type HttpsApi } from '../../agent/tls.ts'
import { startHttpApi, type HttpApi } from '../../agent/http.ts'
import { silentLogger } from '../../encoding/log.ts'

const work = mkdtempSync(join(tmpdir(), 'quorate-redteam-https-'))
t.teardown(() => {
  rmSync(work, { recursive: true, force: true })
})
const identity = await loadTlsIdentity({ path: join(work, 'tls.key'), nodeId: 'node-red', chainId: 'red-chain' })
let serving = true
const api: HttpsApi = await startHttpsApi({
  listen: '127.0.0.1:0',
  identity,
  routes: path =>
    path.startsWith('/app/')
      ? (_req, res) => {
          res.end('ok')
        }
      : undefined,
  serving: () => serving,
  logger: silentLogger(),
  maxConnectionsPerPeer: 8
})
t.teardown(async () => {
  await api.stop()
})

const opened = async (localAddress = '127.0.0.1'): Promise<Socket> =>
  await new Promise((resolve, reject) => {
    const s = netConnect({ host: '127.0.0.1', port: api.port, localAddress }, () => {
      resolve(s)
    })
    s.once('error', reject)
  })
const closed = async (s: Socket): Promise<void> => {
  if (s.closed) return
  await new Promise<void>(resolve => s.once('close', () => resolve()))
}

/** A TLS request for /app/x/ from `localAddress`: whether the handshake completed, and what came back. */
async function get(localAddress: string): Promise<{ secure: boolean; text: string }> {
  return await new Promise(resolve => {
    let secure = false
    let text = ''
    // the TCP socket carries the source address (tls.connect's own options do not type it)
    const socket = netConnect({ host: '127.0.0.1', port: api.port, localAddress })
    socket.on('error', () => {})
    const s = tlsConnect({ socket, rejectUnauthorized: false }, () => {
      secure = true
      s.write('GET /app/x/ HTTP/1.1\r\nhost: n\r\nconnection: close\r\n\r\n')
    })
    s.on('data', (d: Buffer) => {
      text += d.toString()
    })
    s.on('error', () => {})
    s.on('close', () => resolve({ secure, text }))
  })
}

t.test('one address holding its share with half-open connections: the next is refused, others served', async t => {
  const held: Socket[] = []
  for (let i = 0; i < 8; i++) {
    const s = await opened()
    s.on('error', () => {})
    held.push(s)
  }
  const before = api.refused
  const extra = await opened().catch((e: unknown) => e)
  if (extra instanceof Error) t.pass('the extra connection was refused at once')
  else {
    ;(extra as Socket).on('error', () => {})
    await closed(extra as Socket)
    t.pass('the extra connection was closed by the server')
  }
  t.equal(api.refused, before + 1, 'counted as refused before any handshake')
  const { text } = await get('127.0.0.2')
  t.match(text, /^HTTP\/1\.1 200/, 'a client from another address is served meanwhile')
  for (const s of held) s.destroy()
  await Promise.all(held.map(closed))
})

t.test('a handshake that never completes is closed by the server (no slowloris before TLS)', async t => {
  const s = await opened('127.0.0.3')
  s.on('error', () => {})
  // the first bytes of a TLS record header, and then nothing
  s.write(Uint8Array.of(0x16, 0x03, 0x01))
  await closed(s)
  t.ok(s.closed, 'the server closed the stalled handshake')
})

t.test('a key the chain has not bound: the connection is closed before the server signs anything', async t => {
  serving = false
  t.teardown(() => {
    serving = true
  })
  const before = api.refused
  const r = await get('127.0.0.4')
  t.equal(r.secure, false, 'no TLS session')
  t.equal(r.text, '', 'nothing came back')
  t.equal(api.refused, before + 1)
})

/**
 * A client that completes its connection and then sends its request headers one line a second,
 * never finishing them: resolves with how long the server let it stay and what it answered.
 */
async function trickle(socket: Socket | TLSSocket): Promise<{ heldMs: number; text: string }> {
  return await new Promise(resolve => {
    let text = ''
    let t0 = 0
    let timer: NodeJS.Timeout | undefined
    const start = (): void => {
      t0 = performance.now()
      socket.write('GET /app/x/ HTTP/1.1\r\nhost: n\r\n')
      let i = 0
      timer = setInterval(() => {
        if (!socket.destroyed) socket.write(`x-slow-${i++}: y\r\n`)
      }, 1000)
    }
    socket.on('data', (d: Buffer) => {
      text += d.toString()
    })
    socket.on('error', () => {})
    socket.once('close', () => {
      clearInterval(timer)
      resolve({ heldMs: performance.now() - t0, text })
    })
    if ('encrypted' in socket) socket.once('secureConnect', start)
    else socket.once('connect', start)
  })
}

t.test('a client trickling its headers is closed soon after headersTimeout (10 s), not ~40 s later', async t => {
  // the local HTTP API has the same bound (agent/http.ts); both clients run at once
  const local: HttpApi = await startHttpApi({
    listen: '127.0.0.1:0',
    status: () => ({}),
    metrics: () => '',
    logger: silentLogger()
  })
  t.teardown(async () => {
    await local.stop()
  })
  const localPort = Number(new URL(local.url).port)
  const socket = netConnect({ host: '127.0.0.1', port: api.port, localAddress: '127.0.0.5' })
  socket.on('error', () => {})
  const [overTls, plain] = await Promise.all([
    trickle(tlsConnect({ socket, rejectUnauthorized: false })),
    trickle(netConnect({ host: '127.0.0.1', port: localPort }))
  ])
  for (const [name, r] of [
    ['https', overTls],
    ['local http', plain]
  ] as const) {
    t.match(r.text, /^HTTP\/1\.1 408/, `${name}: the server answered 408 and closed`)
    // Node checked the timeout every 30 s before (closed at ~30–40 s); now every second. The bound
    // leaves room for a loaded machine and still fails the old behaviour.
    t.ok(r.heldMs < 20_000, `${name}: held ${Math.round(r.heldMs)} ms (< 20 s)`)
  }
})

t.test('one address opening connections faster than its handshake rate is refused; another is served', async t => {
  // a bucket of 3 that refills once in ~17 minutes: exactly three handshakes, whatever the load
  const limited = await startHttpsApi({
    listen: '127.0.0.1:0',
    identity,
    routes: () => (_req, res) => {
      res.end('ok')
    },
    serving: () => true,
    logger: silentLogger(),
    handshakesPerSecond: 0.001,
    handshakeBurst: 3
  })
  t.teardown(async () => {
    await limited.stop()
  })
  const fetchFrom = async (localAddress: string) => {
    const url = new URL(limited.url)
    return await new Promise<{ secure: boolean; text: string }>(resolve => {
      let secure = false
      let text = ''
      const socket = netConnect({ host: url.hostname, port: Number(url.port), localAddress })
      socket.on('error', () => {})
      const s = tlsConnect({ socket, rejectUnauthorized: false }, () => {
        secure = true
        s.write('GET /app/x/ HTTP/1.1\r\nhost: n\r\nconnection: close\r\n\r\n')
      })
      s.on('data', (d: Buffer) => {
        text += d.toString()
      })
      s.on('error', () => {})
      s.on('close', () => resolve({ secure, text }))
    })
  }
  for (let i = 0; i < 3; i++) {
    const r = await fetchFrom('127.0.0.6')
    t.match(r.text, /^HTTP\/1\.1 200/, `request ${i + 1} of the burst is served`)
  }
  // each of those closed: the address holds nothing now, so what refuses it is its rate
  for (let i = 0; i < 3; i++) {
    const r = await fetchFrom('127.0.0.6')
    t.equal(r.secure, false, `connection ${i + 4}: closed before the handshake`)
    t.equal(r.text, '')
  }
  t.equal(limited.refused, 3)
  const other = await fetchFrom('127.0.0.7')
  t.match(other.text, /^HTTP\/1\.1 200/, 'another address is served meanwhile')
})

t.test('on ::1 the loopback client is one group and its share holds', async t => {
  const v6 = await startHttpsApi({
    listen: '[::1]:0',
    identity,
    routes: () => (_req, res) => {
      res.end('ok')
    },
    serving: () => true,
    logger: silentLogger(),
    maxConnectionsPerPeer: 2
  })
  t.teardown(async () => {
    await v6.stop()
  })
  t.match(v6.url, /^https:\/\/\[::1\]:\d+$/)
  const open6 = async (): Promise<Socket> =>
    await new Promise((resolve, reject) => {
      const s = netConnect({ host: '::1', port: v6.port }, () => {
        resolve(s)
      })
      s.once('error', reject)
    })
  const held = [await open6(), await open6()]
  for (const s of held) s.on('error', () => {})
  const extra = await open6().catch((e: unknown) => e)
  if (!(extra instanceof Error)) {
    ;(extra as Socket).on('error', () => {})
    await closed(extra as Socket)
  }
  t.equal(v6.refused, 1, 'the third connection from ::1 was refused before the handshake')
  for (const s of held) s.destroy()
  await Promise.all(held.map(closed))
})
