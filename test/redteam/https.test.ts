// Red team (issue 14): the node's HTTPS listener (agent/tls.ts startHttpsApi) under connection
// floods. One address holding its whole share with half-open connections cannot take more, and
// a client from another address is still served; a handshake that never completes is closed by
// the server (handshakeTimeout); a connection made while the key is not bound by the chain is
// closed before the handshake, so the server never signs with that key.
import t from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { connect as netConnect, type Socket } from 'node:net'
import { connect as tlsConnect } from 'node:tls'
import { loadTlsIdentity, startHttpsApi, type HttpsApi } from '../../agent/tls.ts'
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
