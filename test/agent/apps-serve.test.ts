// Serverless apps on a real node (issue 13): an embedded chain with three genesis verifiers on
// loopback (each an agent with swtpm), a certified node under test, dockerd. Apps are published
// on chain (app.publish) with their content held only by verifier 0's IPFS store; the node was
// told to run nothing. One file for all the slow cases, in order, sharing the network:
// cold start fetched from a peer, warm start, 20 concurrent requests during a cold start, the
// bounded queue, policy, a tampered image, idle scale to zero and wake, revocation under
// traffic, and loss of certification (last: it ends the node's serving).
import t from 'tap'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import Docker from 'dockerode'
import { startTestNetwork, PLATFORM, OS_IMAGE } from '../helpers/network.ts'
import { freePort, uniqueLabel, cleanupDocker, BUSYBOX } from '../containers/helpers.ts'
import { Agent } from '../../agent/agent.ts'
import type { AgentStatus } from '../../agent/agent.ts'
import { loadConfig } from '../../agent/config.ts'
import { generateChainKey } from '../../chain/index.ts'
import type { AppPublishBody } from '../../chain/types.ts'
import { buildImageTar } from '../../containers/index.ts'
import { silentLogger } from '../../encoding/log.ts'

const label = uniqueLabel('apps-serve')
const docker = new Docker()
const net = await startTestNetwork({ verifiers: 3 })
let node: Agent | undefined
t.teardown(async () => {
  await node?.runner.stopAll('test over').catch(() => {})
  await node?.stop()
  await net.stop()
  await cleanupDocker(docker, label)
})

const PORT = 8080 // each app has its own loopback (isolated networking)
/**
 * A one-layer busybox image serving /www on 127.0.0.1:8080, after `delayS` seconds (a slow start
 * keeps a cold start open long enough for the concurrent requests to arrive while it runs).
 */
function appImage(body: string, delayS = 0): { tar: Uint8Array; imageId: string } {
  const httpd = `exec /bin/busybox httpd -f -p 127.0.0.1:${PORT} -h /www`
  return buildImageTar({
    files: [
      { path: 'bin' },
      { path: 'bin/busybox', content: readFileSync(BUSYBOX), mode: 0o755 },
      { path: 'www' },
      { path: 'www/index.html', content: new TextEncoder().encode(body) }
    ],
    entrypoint: ['/bin/busybox', 'sh', '-c', delayS > 0 ? `/bin/busybox sleep ${delayS}; ${httpd}` : httpd],
    labels: { 'quorate.test': label }
  })
}

const owner = await generateChainKey()
const provider = net.verifiers[0]
/** Puts the image on verifier 0 only and publishes the app; returns what was published. */
async function publishApp(
  name: string,
  img: { tar: Uint8Array; imageId: string },
  over: Partial<AppPublishBody> = {}
): Promise<AppPublishBody> {
  const added = await provider.store.add(img.tar)
  const body: AppPublishBody = {
    name,
    version: '1',
    digest: img.imageId,
    cid: added.cid,
    size: added.size,
    port: PORT,
    limits: { memoryBytes: 64 << 20, pids: 32 },
    idleTimeoutMs: 60_000,
    ...over
  }
  await net.chain.publishApp(owner, body)
  return body
}

const sw = await net.newSwtpm()
node = new Agent({
  config: loadConfig({
    env: {},
    flags: {
      home: join(net.work, 'node'),
      tcti: sw.tcti,
      chainRpc: net.chainUrl,
      httpListen: `127.0.0.1:${await freePort()}`,
      platform: PLATFORM,
      osImage: OS_IMAGE,
      roundTimeoutMs: 5000,
      appsPolicy: 'deny',
      appsList: ['denied'],
      appQueueMax: 24
    }
  }),
  logger: silentLogger(),
  simulatedBootLog: net.bootLog,
  manual: true
})
const a = node
await a.start()
const r = await a.certify()
if (r.outcome !== 'pass') throw new Error(`the node under test was not certified: ${r.failedClaims.join(', ')}`)
const base = a.httpUrl ?? ''

async function get(path: string): Promise<{ status: number; body: string; retryAfter: string | null }> {
  const res = await fetch(`${base}${path}`)
  return { status: res.status, body: await res.text(), retryAfter: res.headers.get('retry-after') }
}
async function status(): Promise<AgentStatus> {
  return (await (await fetch(`${base}/status`)).json()) as AgentStatus
}
function appOf(s: AgentStatus, name: string): AgentStatus['apps'][number] | undefined {
  return s.apps.find(x => x.name === name)
}
function launchesOf(name: string): number {
  const log = readFileSync(join(a.config.home, 'container-events.jsonl'), 'utf8')
  return log.split('\n').filter(l => l.includes(`"image":"${name}@`)).length
}
/** Polls a condition on the node (state changes happen in the background). */
async function until<T>(what: string, f: () => Promise<T | undefined>, ms = 20_000): Promise<T> {
  const end = Date.now() + ms
  for (;;) {
    const v = await f()
    if (v !== undefined) return v
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 50))
  }
}

const hello = appImage(`hello from a serverless app (${label})\n`)
const helloApp = await publishApp('hello', hello, { idleTimeoutMs: 2000 })

t.test('cold start: the image is fetched from a peer, verified, measured, run; warm start after', async t => {
  t.notOk(await a.store.has(helloApp.cid), 'the node holds no copy before')
  const served0 = provider.store.served()
  const first = await get('/app/hello/')
  t.equal(first.status, 200, first.body)
  t.match(first.body, /hello from a serverless app/)
  const served1 = provider.store.served()
  t.ok(served1.bulk + served1.stream > served0.bulk + served0.stream, 'verifier 0 sent the image')
  t.ok(await a.store.has(helloApp.cid), 'the node keeps the blocks to serve peers')
  t.equal(launchesOf('hello'), 1, 'the launch is in the measured container log as hello@1')
  const s = appOf(await status(), 'hello')
  t.equal(s?.state, 'running')
  t.equal(s?.version, '1')
  t.equal(s?.digest, hello.imageId)
  t.equal(s?.lastWake?.kind, 'launch')
  t.comment(`cold start (fetch from a peer → ready): ${s?.lastWake?.ms} ms`)

  const warm = await get('/app/hello/index.html')
  t.equal(warm.status, 200)
  t.equal(launchesOf('hello'), 1, 'warm: no second launch')
  const s2 = appOf(await status(), 'hello')
  t.equal(s2?.requests, 2)
  t.ok((s2?.bytesOut ?? 0) >= 2 * warm.body.length, 'bytes out counted')
  t.ok(s2?.lastRequest !== undefined)
  t.equal(a.runner.get('hello@1'), undefined, 'app containers are not tenants')
  const metrics = await (await fetch(`${base}/metrics`)).text()
  t.match(metrics, /quorate_app_requests_total\{app="hello"\} 2\n/)
  t.match(metrics, /quorate_apps\{state="running"\} 1\n/)
  t.match(metrics, /quorate_app_wake_ms\{app="hello",kind="launch"\} \d/)
})

t.test('idle: scaled to zero (paused), woken by the next request', async t => {
  // idleTimeoutMs 2000: the sweep pauses it soon after the last request
  await until('hello paused', async () => (appOf(await status(), 'hello')?.state === 'paused' ? true : undefined))
  const c = a.runner.list().find(x => x.app === 'hello')
  t.ok(c !== undefined, 'the container is kept')
  t.equal((await docker.getContainer(c?.id ?? '').inspect()).State.Paused, true, 'docker says paused')
  const res = await get('/app/hello/')
  t.equal(res.status, 200)
  const s = appOf(await status(), 'hello')
  t.equal(s?.state, 'running')
  t.equal(s?.lastWake?.kind, 'unpause')
  t.equal(launchesOf('hello'), 1, 'a wake is no new launch')
  t.comment(`wake from pause: ${s?.lastWake?.ms} ms`)
})

t.test('20 concurrent requests during a cold start: exactly one launch, all answered', async t => {
  await publishApp('burst', appImage(`burst ${label}\n`, 1))
  const all = await Promise.all(Array.from({ length: 20 }, async () => await get('/app/burst/')))
  for (const x of all) if (x.status !== 200) t.comment(x.body)
  t.same(
    all.map(x => x.status),
    Array(20).fill(200),
    'all 20 served'
  )
  t.ok(all.every(x => x.body === `burst ${label}\n`))
  t.equal(launchesOf('burst'), 1, 'one measured launch')
  t.equal(a.runner.list().filter(x => x.app === 'burst').length, 1, 'one container')
})

t.test('beyond the queue (appQueueMax 24): 503 with Retry-After, the rest served', async t => {
  await publishApp('queue', appImage(`queue ${label}\n`, 2))
  const all = await Promise.all(Array.from({ length: 30 }, async () => await get('/app/queue/')))
  const ok = all.filter(x => x.status === 200)
  const busy = all.filter(x => x.status === 503)
  t.equal(ok.length, 24, 'those queued are served')
  t.equal(busy.length, 6, 'the rest refused')
  t.ok(
    busy.every(x => x.retryAfter === '1' && /already wait/.test(x.body)),
    'with Retry-After and the reason'
  )
  t.equal(launchesOf('queue'), 1)
})

t.test('policy: a denied app is refused (403), an unknown one is 404', async t => {
  const denied = await get('/app/denied/')
  t.equal(denied.status, 403)
  t.match(denied.body, /policy \(deny\)/)
  const unknown = await get('/app/nobody-published-this/')
  t.equal(unknown.status, 404)
})

t.test('a tampered image (content whose digest differs from the chain) never starts', async t => {
  const real = appImage(`the real app ${label}\n`)
  const evil = appImage(`tampered content ${label}\n`)
  const added = await provider.store.add(evil.tar)
  await net.chain.publishApp(owner, {
    name: 'tampered',
    version: '1',
    digest: real.imageId, // what the publisher signed
    cid: added.cid, // what the peers hand out
    size: added.size,
    port: PORT,
    limits: { memoryBytes: 64 << 20, pids: 32 },
    idleTimeoutMs: 60_000
  })
  const res = await get('/app/tampered/')
  t.equal(res.status, 502)
  t.match(res.body, /config digest/)
  t.equal(launchesOf('tampered'), 0, 'nothing measured')
  t.equal(a.runner.list().filter(x => x.app === 'tampered').length, 0, 'no container')
  await t.rejects(docker.getImage(evil.imageId).inspect(), 'nothing loaded into Docker')
  const again = await get('/app/tampered/')
  t.equal(again.status, 502, 'refused again (held off, not fetched again at once)')
})

t.test('revoked under traffic: stopped at once, later requests 410', async t => {
  await publishApp('rev', appImage(`rev ${label}\n`))
  t.equal((await get('/app/rev/')).status, 200)
  const statuses: number[] = []
  let stop = false
  const traffic = (async () => {
    while (!stop) statuses.push((await get('/app/rev/')).status)
  })()
  await until('traffic flowing', async () => (statuses.length >= 3 ? true : undefined))
  await net.chain.revokeApp(owner, 'rev')
  await until('410 after the revoke', async () => (statuses.at(-1) === 410 ? true : undefined))
  stop = true
  await traffic
  t.ok(
    statuses.slice(0, 3).every(s => s === 200),
    'served before the revoke'
  )
  t.equal(a.runner.list().filter(x => x.app === 'rev').length, 0, 'its container is stopped')
  t.equal(appOf(await status(), 'rev')?.state, 'removed')
  t.equal((await get('/app/rev/')).status, 410, 'and stays 410')
})

t.test('usage: the node records its per-app counts on chain', async t => {
  // the period is 10 min by default: end this one now, through the path the timer takes
  const sent = await a.flushUsage()
  t.ok(sent !== undefined, 'a record was sent')
  t.ok((sent?.apps.length ?? 0) >= 3, 'one line per app served')
  const after = await net.chain.appUsage('hello')
  if (after === undefined) throw new Error('no usage of hello on chain')
  t.equal(after.nodes[0]?.nodeId, a.nodeId)
  t.ok(after.totals.requests >= 3, 'hello served at least 3 requests')
})

t.test('re-attestation with app launches in the container log (one of them revoked since) passes', async t => {
  t.ok(launchesOf('rev') === 1 && launchesOf('hello') === 1, 'the log holds the launches')
  const again = await a.certify()
  t.equal(again.outcome, 'pass', `the committee allows published app versions (${again.failedClaims.join(', ')})`)
  t.equal((await get('/app/hello/')).status, 200, 'and the node serves on')
})

t.test('the node loses its certification: every app stops, requests get 503', async t => {
  t.equal((await get('/app/hello/')).status, 200)
  t.ok(
    a.runner.list().some(x => x.app !== undefined),
    'apps run'
  )
  // end the certification on chain (as a reboot does); the runner's watch sees it
  await net.chain.requestAttestation(a.key, { reset: true })
  const unwatch = a.runner.watchCertification({ intervalMs: 100 })
  t.teardown(unwatch)
  await until('certification lost', async () => (a.runner.certification().certified ? undefined : true))
  t.equal(a.runner.list().length, 0, 'every app stopped')
  // stopAll removed them from the runner at once; Docker's stop (2 s grace) ends them
  await until('Docker has none left', async () => {
    const managed = await docker.listContainers({
      all: true,
      filters: JSON.stringify({ label: [`quorate.node=${a.nodeId}`] })
    })
    return managed.length === 0 ? true : undefined
  })
  const res = await get('/app/hello/')
  t.equal(res.status, 503)
  t.match(res.body, /not certified/)
  t.ok(res.retryAfter !== null)
})
