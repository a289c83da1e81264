// Two agents on one machine with default settings (issue 12): configurations loaded with nothing
// but a home, a TPM and the chain; both start, each on its own ports — the default HTTP address
// 127.0.0.1:8460 taken (by the first agent, or by anything else here) becomes any free port, the
// derived HTTPS port likewise, libp2p and the bulk channel are ephemeral — and the chain records
// each node's own addresses and HTTPS endpoint. An address the operator chose that is taken still
// fails naming --http: test/agent/start-failure.test.ts.
import t from 'tap'
import { join } from 'node:path'
import { writeFileSync } from 'node:fs'
import { Agent } from '../../agent/agent.ts'
import { defaults, httpListenUnchosen, loadConfig, type AgentConfig } from '../../agent/config.ts'
import { silentLogger } from '../../encoding/log.ts'
import { startTestNetwork, PLATFORM, OS_IMAGE } from '../helpers/network.ts'

const net = await startTestNetwork({ verifiers: 1, k: 1 })
const agents: Agent[] = []
t.teardown(async () => {
  for (const a of agents) await a.stop().catch(() => {})
  await net.stop()
})

const configs: AgentConfig[] = []
for (const name of ['a', 'b']) {
  const sw = await net.newSwtpm()
  configs.push(
    loadConfig({
      env: {},
      flags: {
        home: join(net.work, name),
        tcti: sw.tcti,
        chainRpc: net.chainUrl,
        platform: PLATFORM,
        osImage: OS_IMAGE
      }
    })
  )
}

t.test('the defaults fix only the HTTP port', async t => {
  for (const c of configs) {
    t.equal(c.httpListen, defaults.httpListen, 'HTTP: the default address')
    t.equal(c.httpsListen, '', 'HTTPS: derived from it')
    t.same(c.listen, ['/ip4/127.0.0.1/tcp/0'], 'libp2p: an ephemeral port')
    t.equal(c.bulkPort, 0, 'bulk channel: an ephemeral port')
    t.ok(httpListenUnchosen(c), 'nobody chose the HTTP address: it may move when taken')
  }
  // the same address chosen by a flag, a variable or a config file stays put (and fails when taken)
  const file = join(net.work, 'http.json')
  writeFileSync(file, JSON.stringify({ httpListen: defaults.httpListen }))
  for (const [how, c] of [
    ['flag', loadConfig({ env: {}, flags: { httpListen: defaults.httpListen } })],
    ['variable', loadConfig({ env: { QUORATE_HTTP: defaults.httpListen } })],
    ['config file', loadConfig({ env: {}, file })]
  ] as const)
    t.notOk(httpListenUnchosen(c), `chosen by a ${how}: no fallback`)
})

t.test('both agents start, each on its own ports, registered with them', async t => {
  for (const c of configs) {
    const a = new Agent({ config: c, logger: silentLogger(), simulatedBootLog: net.bootLog })
    agents.push(a)
    await a.start()
  }
  const [sa, sb] = agents.map(a => a.status())
  t.ok(sa.http !== undefined && sb.http !== undefined, 'both HTTP APIs listen')
  t.not(sa.http, sb.http, 'on different ports')
  t.not(sb.http, `http://${defaults.httpListen}`, 'the second is not on the default port the first took')
  for (const s of [sa, sb]) {
    const r = await fetch(`${s.http ?? ''}/healthz`)
    t.equal(r.status, 200, `${s.http ?? ''} answers`)
    await r.body?.cancel()
  }
  t.ok(sa.https !== undefined && sb.https !== undefined, 'both HTTPS endpoints listen')
  t.not(sa.https?.url, sb.https?.url, 'on different ports')
  for (const [a, s] of [
    [agents[0], sa],
    [agents[1], sb]
  ] as const) {
    const rec = (await net.chain.node(a.nodeId))?.record
    t.equal(rec?.endpoint, s.https?.url, 'the chain holds the port this agent bound for HTTPS')
    t.same([...(rec?.addrs ?? [])].sort(), [...s.p2p].sort(), 'and its own libp2p addresses')
  }
})
