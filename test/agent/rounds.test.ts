// The real agent (swtpm, embedded chain, three genesis verifiers on loopback, dockerd) through
// failed and passing rounds. The failure is one a node meets for real: a container launch was
// measured into PCR 13 but its line never reached the container log (the agent died between
// extend and append), so the log no longer replays to the quoted PCR and every member fails the
// `containers` claim. Once the line is in the log the next round passes — from `revoked`, with no
// illegal transition, the gate opened and a tenant started.
import t from 'tap'
import { appendFileSync } from 'node:fs'
import { join } from 'node:path'
import Docker from 'dockerode'
import { startTestNetwork, PLATFORM, OS_IMAGE } from '../helpers/network.ts'
import { Agent } from '../../agent/agent.ts'
import { loadConfig } from '../../agent/config.ts'
import { generateChainKey } from '../../chain/index.ts'
import { chainImagePublisher } from '../../containers/chain-registry.ts'
import { publishImage, CONTAINER_PCR } from '../../containers/index.ts'
import { containerLaunchLine, containerEventDigest, envDigest } from '../../attestation/containerlog.ts'
import { silentLogger } from '../../encoding/log.ts'
import { freePort, helloImage } from '../../cli/demo.ts'

const net = await startTestNetwork({ verifiers: 3 })
const docker = new Docker()
const img = helloImage('hello from a tenant container (rounds test)\n')
const IMAGE = 'rounds-test/hello'
let node: Agent | undefined
t.teardown(async () => {
  await node?.runner.stopAll('test over').catch(() => {})
  await node?.stop()
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
const tenant = await generateChainKey()
const publisher = chainImagePublisher(async body => await net.chain.send('image.publish', body, tenant))
const pub = await publishImage(net.verifiers[0].store, publisher, { source: img.tar, name: IMAGE })

const sw = await net.newSwtpm()
const home = join(net.work, 'node')
node = new Agent({
  config: loadConfig({
    env: {},
    flags: {
      home,
      tcti: sw.tcti,
      chainRpc: net.chainUrl,
      httpListen: `127.0.0.1:${await freePort()}`,
      platform: PLATFORM,
      osImage: OS_IMAGE,
      roundTimeoutMs: 5000
    }
  }),
  logger: silentLogger(),
  simulatedBootLog: net.bootLog,
  manual: true
})
const a = node
await a.start()

t.test('fail, fail, then pass: no illegal transition, certified in one round, tenants run', async t => {
  const kinds: string[] = []
  a.lifecycle.onChange(s => {
    kinds.push(s.kind)
  })
  // measured, not logged
  const line = containerLaunchLine({
    type: 'container.launch',
    image: IMAGE,
    digest: pub.digest,
    cid: pub.cid,
    args: [],
    envDigest: envDigest([])
  })
  await a.tpm.pcrExtend(CONTAINER_PCR, { sha256: containerEventDigest(line) })

  const r1 = await a.certify()
  t.equal(r1.outcome, 'fail', 'the log does not replay to PCR 13')
  t.equal(a.lifecycle.state.kind, 'revoked')
  t.equal(a.runner.certification().certified, false)
  const r2 = await a.certify()
  t.equal(r2.outcome, 'fail', 'still not')
  t.ok(r2.round > r1.round)
  t.equal(a.lifecycle.state.kind, 'revoked', 'revoked → awaiting-certification → revoked')

  appendFileSync(join(home, 'container-events.jsonl'), line + '\n')
  const r3 = await a.certify()
  t.equal(r3.outcome, 'pass', `the log replays now (${r3.pass} pass / ${r3.fail} fail)`)
  t.same(
    a.lifecycle.state,
    { kind: 'certified', round: r3.round, expiresAt: r3.expiresAt },
    'certified in that one round'
  )
  t.same(kinds, [
    'awaiting-certification',
    'revoked',
    'awaiting-certification',
    'revoked',
    'awaiting-certification',
    'certified'
  ])
  t.notOk(kinds.includes('degraded'), 'never degraded')
  t.same(a.runner.certification(), { certified: true, expiresAt: r3.expiresAt }, 'the gate was told (setCertification)')
  t.equal((await net.chain.node(a.nodeId))?.effective, 'certified', 'the chain agrees')

  const m = a.metrics
  t.equal(m.value('quorate_rounds_total', { outcome: 'fail' }), 2, 'each failed round counted once')
  t.equal(m.value('quorate_rounds_total', { outcome: 'pass' }), 1, 'the passing round counted once')
  t.equal(m.value('quorate_rounds_total', { outcome: 'error' }), undefined, 'and never as an error')
  t.equal(m.value('quorate_certified'), 1)

  // the gate is open: a tenant starts (fetched from a verifier, measured, run) and serves
  const port = await freePort()
  const c = await a.deploy({ image: IMAGE, port, args: ['-p', `127.0.0.1:${port}`] })
  t.equal(c.image, IMAGE)
  const res = await fetch(`${a.httpUrl ?? ''}/tenant/${encodeURIComponent(IMAGE)}/`)
  t.equal(res.status, 200)
  t.match(await res.text(), /rounds test/)
})
