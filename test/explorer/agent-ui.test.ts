// The explorer at an agent's /ui: the agent's real HTTP API with the real (lazy) explorer over a
// real embedded chain. An agent nobody looks at must not read the chain at all; the first /ui
// request starts the indexer, which stops once no viewer has asked for a while (and starts
// again on the next request). /status/eventlog and /ui/api/local decode the node's own logs.
import t from 'tap'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { initChainHome, startEmbeddedValidator, type EmbeddedValidator } from '../../chain/validator.ts'
import { ChainClient } from '../../chain/client.ts'
import { createTestOnlyQuorumRules } from '../../chain/testing.ts'
import { startHttpApi } from '../../agent/http.ts'
import { createExplorer, type Explorer } from '../../agent/explorer/server.ts'
import { decodeBootLog, decodeContainerLog, eventLogView, localView } from '../../agent/explorer/local.ts'
import type { LocalView } from '../../agent/explorer/types.ts'
import type { Snapshot } from '../../agent/explorer/indexer.ts'
import { sampleBootLog } from '../../attestation/samples/index.ts'
import { containerLaunchLine, envDigest } from '../../attestation/index.ts'
import { silentLogger } from '../../encoding/log.ts'

/** Resolves once `n` more blocks are committed. */
function blocks(v: EmbeddedValidator, n: number): Promise<void> {
  return new Promise(resolve => {
    let seen = 0
    const off = v.producer.onCommit(() => {
      if (++seen >= n) {
        off()
        resolve()
      }
    })
  })
}

/** Resolves when the explorer's polling becomes `want`. */
function polling(e: Explorer, want: boolean): Promise<void> {
  if (e.polling === want) return Promise.resolve()
  return new Promise(resolve => {
    const off = e.onPolling(p => {
      if (p === want) {
        off()
        resolve()
      }
    })
  })
}

t.test("agent /ui: lazy indexer, the node's decoded event logs", async t => {
  const home = await mkdtemp(join(tmpdir(), 'quorate-ui-'))
  t.teardown(async () => {
    await rm(home, { recursive: true, force: true })
  })
  await initChainHome({ home, chainId: 'ui-test' })
  const v = await startEmbeddedValidator({
    home,
    rules: createTestOnlyQuorumRules(),
    blockIntervalMs: 0,
    emptyBlockIntervalMs: 50
  })
  t.teardown(async () => {
    await v.stop()
  })
  const client = new ChainClient({ url: v.url })
  t.teardown(() => {
    client.close()
  })
  // every call the explorer makes to the chain is counted (the real client underneath)
  let calls = 0
  const counted = new Proxy(client, {
    get(target, prop) {
      const f = Reflect.get(target, prop) as unknown
      if (typeof f !== 'function') return f
      return (...args: unknown[]) => {
        calls++
        return (f as (...a: unknown[]) => unknown).apply(target, args)
      }
    }
  })

  const boot = sampleBootLog()
  const launch = containerLaunchLine({
    type: 'container.launch',
    image: 'acme/web:1',
    digest: `sha256:${'ab'.repeat(32)}`,
    cid: 'bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi',
    args: ['-p', '8080'],
    envDigest: envDigest({})
  })
  const status = {
    nodeId: '12D3KooWTestNode',
    state: { kind: 'certified' },
    containers: [{ image: 'acme/web:1', digest: `sha256:${'ab'.repeat(32)}`, cid: 'bafy', url: 'http://127.0.0.1:1' }],
    apps: [{ name: 'hello', state: 'running', version: '2', requests: 3 }, { bogus: true }]
  }
  const explorer = createExplorer({
    chain: counted,
    logger: silentLogger(),
    pollMs: 20,
    lazy: { idleMs: 200 },
    local: async () => localView(status, boot, `${launch}\n`)
  })
  t.teardown(async () => {
    await explorer.stop()
  })
  const api = await startHttpApi({
    listen: '127.0.0.1:0',
    status: () => status,
    metrics: () => '',
    ui: (req, res, path) => {
      explorer.handle(req, res, path)
    },
    eventLog: async () => eventLogView(status.nodeId, boot, `${launch}\n`),
    logger: silentLogger()
  })
  t.teardown(async () => {
    await api.stop()
  })

  // 1. nobody looks: blocks come, the explorer asks the chain nothing
  await blocks(v, 3)
  t.equal(calls, 0, 'no chain call before the first /ui request')
  t.equal(explorer.polling, false, 'not polling')
  // the agent's other routes do not wake it
  t.equal((await fetch(`${api.url}/status`)).status, 200)
  t.equal((await fetch(`${api.url}/healthz`)).status, 200)
  t.equal(calls, 0, 'still none after /status and /healthz')

  // 2. the first /ui request starts it
  const redirect = await fetch(`${api.url}/ui`, { redirect: 'manual' })
  t.equal(redirect.status, 308, '/ui redirects')
  t.equal(redirect.headers.get('location'), '/ui/', 'to /ui/ (the page links relative to it)')
  const page = await fetch(`${api.url}/ui/`)
  t.equal(page.status, 200)
  t.match(await page.text(), /<script type="module" src="app.js">/, 'the page')
  t.equal(explorer.polling, true, 'polling once someone opened /ui')
  const first = await explorer.ready()
  t.ok(first.height >= 3, `the snapshot reads the chain (height ${first.height})`)
  const js = await fetch(`${api.url}/ui/app.js`)
  t.equal(js.status, 200, 'the page script is served under /ui/')
  t.ok((await js.arrayBuffer()).byteLength > 1000)
  const snap = (await (await fetch(`${api.url}/ui/api/snapshot`)).json()) as Snapshot
  t.equal(snap.chainId, 'ui-test')
  t.same(snap.apps, [], 'no apps on this chain')
  const post = await fetch(`${api.url}/ui/api/snapshot`, { method: 'POST', body: '{}' })
  t.equal(post.status, 405, 'read-only: POST is refused')

  // 3. the viewer leaves: polling stops, and the chain is asked nothing more
  await polling(explorer, false)
  const after = calls
  await blocks(v, 5)
  t.equal(calls, after, 'no chain call while idle, however many blocks come')

  // 4. a viewer comes back (an event stream): polling resumes and catches up, and does not
  // stop while the stream is open
  const ac = new AbortController()
  const stream = await fetch(`${api.url}/ui/api/events`, { signal: ac.signal })
  t.equal(stream.status, 200)
  t.equal(explorer.polling, true, 'polling again')
  const target = (await client.status()).height
  const reader = stream.body?.getReader()
  if (reader === undefined) throw new Error('no stream body')
  let text = ''
  const heights = (): number[] =>
    [...text.matchAll(/event: snapshot\ndata: \{"height":(\d+)\}/g)].map(x => Number(x[1]))
  while (!heights().some(h => h >= target)) {
    const { value, done } = await reader.read()
    if (done) throw new Error(`stream ended: ${text}`)
    text += new TextDecoder().decode(value)
  }
  t.ok(explorer.index.snapshot !== undefined && explorer.index.snapshot.height >= target, 'caught up while idle')
  await blocks(v, 6) // > idleMs of blocks at 50 ms each, while the stream is open
  t.equal(explorer.polling, true, 'an open event stream keeps it polling')
  ac.abort()
  await reader.cancel().catch(() => {})
  await polling(explorer, false)
  t.pass('and it stops after the stream closed')

  // 5. the node's own logs, decoded
  const ev = (await (await fetch(`${api.url}/status/eventlog`)).json()) as ReturnType<typeof eventLogView>
  t.equal(ev.nodeId, status.nodeId)
  t.ok(ev.boot.events.length > 10, `${ev.boot.events.length} boot events decoded`)
  t.same(
    { pcr: ev.boot.events[0].pcr, type: ev.boot.events[0].type },
    { pcr: 0, type: 'EV_NO_ACTION' },
    'the first is the Spec ID header on PCR 0'
  )
  t.ok(
    ev.boot.events.some(e => e.type === 'EV_SEPARATOR'),
    'separators are named'
  )
  t.equal(Buffer.from(ev.boot.raw ?? '', 'base64').length, boot.length, 'with the bytes the committee receives')
  t.same(
    ev.containers.entries.map(e => [e.image, e.args]),
    [['acme/web:1', ['-p', '8080']]],
    'the container log'
  )
  const local = (await (await fetch(`${api.url}/ui/api/local`)).json()) as LocalView
  t.equal(local.nodeId, status.nodeId)
  t.equal(local.bootLog.raw, undefined, 'the page gets no raw bytes')
  t.equal(local.bootLog.events.length, ev.boot.events.length)
  t.same(
    local.apps,
    [{ name: 'hello', state: 'running', version: '2', requests: 3 }],
    'apps, malformed entries left out'
  )
  t.same(
    local.containers.map(c => c.image),
    ['acme/web:1'],
    'tenants running'
  )
})

t.test('decoding the logs: bad input is reported, not thrown', async t => {
  const bad = decodeBootLog(new Uint8Array([1, 2, 3]))
  t.equal(bad.present, true)
  t.same(bad.events, [])
  t.match(bad.error, /./, 'says why the boot log does not decode')
  t.same(decodeBootLog(undefined), { present: false, events: [] }, 'no boot log')
  const c = decodeContainerLog('{"type":"container.launch","image":"x"}\n')
  t.same(c.entries, [])
  t.match(c.error, /line 1/, 'names the line that does not decode')
  t.same(decodeContainerLog(''), { entries: [] })
})

t.test('a lazy explorer nobody asked reads nothing; stopped, it says so', async t => {
  // (an unreachable chain: any call would fail the ready() below with a chain error instead)
  const e = createExplorer({
    chain: new ChainClient({ url: 'http://127.0.0.1:9' }),
    logger: silentLogger(),
    lazy: { idleMs: 10 }
  })
  t.equal(e.polling, false)
  await e.stop()
  await t.rejects(e.ready(), /stopped/, 'a stopped explorer says so')
})
