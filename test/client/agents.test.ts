// The client against real agents (swtpm, the embedded chain, three genesis verifiers, Docker, IPFS
// on loopback): two nodes certified by real committee rounds that bound their TLS keys, an app
// published on chain that no node was told to run. Through the light client: the request is
// served by a certified node over its attested HTTPS endpoint, a second request reuses the
// connection without checking again, a man in the middle relaying to a real node is refused
// before any request byte, and when the node that served dies the next request fails over.
import { chainAppPublisher } from '../../containers/chain-registry.ts'
import t from 'tap'
import { join } from 'node:path'
import { createServer as createTlsServer, connect as tlsConnect, type TLSSocket } from 'node:tls'
import Docker from 'dockerode'
import { startTestNetwork, PLATFORM, OS_IMAGE } from '../helpers/network.ts'
import { Agent } from '../../agent/agent.ts'
import { loadConfig } from '../../agent/config.ts'
import { loadTlsIdentity, certificatePem } from '../../agent/tls.ts'
import { createClient, lightChainView, NoNodeServedError } from '../../agent/client/index.ts'
import { LightClient } from '../../chain/light/index.ts'
import { generateChainKey, readGenesis } from '../../chain/index.ts'
import type { AppPublishBody } from '../../chain/types.ts'
import { publishImage } from '../../containers/index.ts'
import { silentLogger } from '../../encoding/log.ts'
import { freePort, helloImage } from '../../cli/demo.ts'

const APP = 'client-hello'
const net = await startTestNetwork({ verifiers: 3 })
const docker = new Docker()
const img = helloImage('hello from an app behind an attested endpoint (client test)\n')
const nodes: Agent[] = []
t.teardown(async () => {
  for (const n of nodes) await n.stop().catch(() => {})
  await docker
    .getImage(img.imageId)
    .remove({ force: true })
    .catch(() => {})
  await net.stop()
})
await docker
  .getImage(img.imageId)
  .remove({ force: true })
  .catch(() => {})

for (const name of ['a', 'b']) {
  const sw = await net.newSwtpm()
  const agent = new Agent({
    config: loadConfig({
      env: {},
      flags: {
        home: join(net.work, `node-${name}`),
        tcti: sw.tcti,
        chainRpc: net.chainUrl,
        httpListen: `127.0.0.1:${await freePort()}`,
        httpsListen: '127.0.0.1:0',
        platform: PLATFORM,
        osImage: OS_IMAGE,
        roundTimeoutMs: 5000
      }
    }),
    logger: silentLogger(),
    simulatedBootLog: net.bootLog,
    manual: true
  })
  nodes.push(agent)
  await agent.start()
  const r = await agent.certify()
  if (r.outcome !== 'pass') throw new Error(`node ${name} was not certified: ${r.failedClaims.join(', ')}`)
}

const tenant = await generateChainKey()
await publishImage(
  net.verifiers[0].store,
  chainAppPublisher(
    {
      name: APP,
      version: '1',
      port: 8080,
      args: ['-p', '127.0.0.1:8080'],
      limits: { memoryBytes: 64 << 20, pids: 64 },
      idleTimeoutMs: 60_000
    },
    async (body: AppPublishBody) => await net.chain.send('app.publish', body, tenant)
  ),
  { source: img.tar, name: APP }
)

const genesis = await readGenesis(join(net.work, 'chain'))
const lc = LightClient.create({ genesis, rpcs: [net.chainUrl] })
const view = lightChainView(lc, [net.chainUrl])
t.teardown(() => {
  view.close?.()
  lc.close()
})

t.test('served by a certified agent over its attested endpoint; the connection is reused unchecked', async t => {
  const c = createClient({ chain: view })
  t.teardown(() => {
    c.close()
  })
  const listed = await c.nodes()
  t.same(listed.map(n => n.nodeId).sort(), nodes.map(n => n.nodeId).sort(), 'both agents, and no genesis verifier')
  const r = await c.request(APP, { path: '/' })
  t.equal(r.status, 200, Buffer.from(r.body).toString())
  t.match(Buffer.from(r.body).toString(), /hello from an app behind an attested endpoint/)
  t.ok(
    nodes.some(n => n.nodeId === r.node),
    'answered by one of the certified agents'
  )
  const s1 = c.stats()
  const again = await c.request(APP, { path: '/' })
  t.equal(again.status, 200)
  t.equal(again.node, r.node, 'the fastest node again')
  const s2 = c.stats()
  t.same(
    [s2.qcChecks, s2.tlsHandshakes, s2.recordChecks],
    [s1.qcChecks, s1.tlsHandshakes, s1.recordChecks],
    'no QC check, handshake or record read for a request on the open connection'
  )
})

t.test('a man in the middle in front of a real agent is refused before any request byte', async t => {
  const target = nodes[0]
  const upstream = new URL(target.httpsUrl ?? '')
  const mitmKey = await loadTlsIdentity({
    path: join(net.work, 'mitm.key'),
    nodeId: target.nodeId,
    chainId: 'test-net'
  })
  let received = 0
  const proxy = createTlsServer(
    {
      minVersion: 'TLSv1.3',
      key: mitmKey.key.export({ type: 'pkcs8', format: 'pem' }),
      cert: certificatePem(mitmKey.certificate)
    },
    (s: TLSSocket) => {
      const up = tlsConnect({ host: upstream.hostname, port: Number(upstream.port), rejectUnauthorized: false })
      s.on('data', (d: Buffer) => {
        received += d.byteLength
        up.write(d)
      })
      up.on('data', (d: Buffer) => s.write(d))
      s.on('error', () => up.destroy())
      up.on('error', () => s.destroy())
    }
  )
  await new Promise<void>(resolve => proxy.listen(0, '127.0.0.1', resolve))
  t.teardown(() => {
    proxy.close()
  })
  const c = createClient({ chain: view })
  t.teardown(() => {
    c.close()
  })
  const port = (proxy.address() as { port: number }).port
  const err = await c.requestUrl(`https://127.0.0.1:${port}/app/${APP}/`).catch((e: unknown) => e)
  t.ok(err instanceof Error, String(err))
  t.match((err as Error).message, /tls-key check failed/)
  t.equal(received, 0, 'the proxy received no request byte')
})

t.test('failover: the node that served dies between requests', async t => {
  const c = createClient({ chain: view })
  t.teardown(() => {
    c.close()
  })
  const first = await c.request(APP, { path: '/' })
  t.equal(first.status, 200)
  const dead = nodes.find(n => n.nodeId === first.node) as Agent
  const alive = nodes.find(n => n !== dead) as Agent
  await dead.stop()
  const second = await c.request(APP, { path: '/' })
  t.equal(second.status, 200, Buffer.from(second.body).toString())
  t.equal(second.node, alive.nodeId, 'the other agent answered (its app loaded on request)')
  t.same(
    second.attempts.map(a => [a.node, a.outcome]),
    [
      [dead.nodeId, 'unreachable'],
      [alive.nodeId, 'served']
    ]
  )
  await alive.stop()
  const none = await c.request(APP, { path: '/' }).catch((e: unknown) => e)
  t.ok(none instanceof NoNodeServedError, 'both gone: no node served, every attempt listed')
})
