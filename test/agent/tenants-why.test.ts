// Tenants.why (issue 12): the sentence the tenant proxy's 404 carries when nothing runs for an image —
// not deployed on this node (and what the chain says of it), its last launch refused and why, or
// deployed and not launched yet. The runner and the chain are faked (agent/tenants.ts's narrow ports);
// the proxy's side is test/containers/proxy-why.test.ts.
import t from 'tap'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Tenants } from '../../agent/tenants.ts'
import { Metrics } from '../../agent/metrics.ts'
import type { LaunchRequest, RunningContainer } from '../../containers/index.ts'
import { silentLogger } from '../../encoding/log.ts'

const dir = mkdtempSync(join(tmpdir(), 'quorate-tenants-why-'))
t.teardown(() => {
  rmSync(dir, { recursive: true, force: true })
})

const chain: Record<string, { cid: string; revoked: boolean }> = {
  'pub/ok': { cid: 'bafyok', revoked: false },
  'pub/gone': { cid: 'bafygone', revoked: true },
  'dep/fails': { cid: 'bafyfails', revoked: false },
  'dep/later': { cid: 'bafylater', revoked: false }
}
let chainDown = false
const lookups: string[] = []
let release: () => void = () => {}
const gate = new Promise<void>(resolve => {
  release = resolve
})
let clock = 1_000_000
const running = new Map<string, RunningContainer>()
const file = join(dir, 'deployments.json')
writeFileSync(file, JSON.stringify({ deployments: [{ image: 'dep/fails', port: 8001 }] }))
const tenants = new Tenants({
  runner: {
    launch: async (req: LaunchRequest): Promise<RunningContainer> => {
      if (req.image === 'dep/fails') throw new Error('no provider holds bafyfails: 0 peers answered')
      const c = { id: `c-${req.image}`, image: req.image, port: req.port } as unknown as RunningContainer
      running.set(c.id, c)
      return c
    },
    list: () => [...running.values()],
    get: (image: string) => [...running.values()].find(c => c.image === image),
    stop: async (id: string) => running.delete(id)
  },
  probe: { running: async () => true },
  configured: [],
  deploymentsFile: file,
  providers: async () => [],
  images: {
    getImage: async name => {
      lookups.push(name)
      if (name.startsWith('slow/')) await gate
      if (chainDown) throw new Error('chain unreachable')
      return chain[name]
    }
  },
  metrics: new Metrics(),
  signal: new AbortController().signal,
  logger: silentLogger(),
  now: () => clock
})

t.test('not deployed here: says so, with what the chain says of the name', async t => {
  t.match(await tenants.why('pub/ok'), /^image "pub\/ok" is not deployed on this node \(quorate deploy pub\/ok/)
  t.match(await tenants.why('pub/ok'), /it is published on chain as bafyok$/)
  t.match(await tenants.why('pub/gone'), /not deployed on this node.*; it is revoked on chain \(bafygone\)$/)
  t.match(await tenants.why('nobody/made'), /not deployed on this node.*; it is not published on chain/)
  clock += 2000 // past the reuse of the last lookup
  chainDown = true
  const r = await tenants.why('pub/ok')
  chainDown = false
  t.match(r, /is not deployed on this node \(quorate deploy pub\/ok --port P\)$/, 'the chain unreachable: no claim')
})

t.test('a refused launch: the reason, until a launch starts', async t => {
  t.match(await tenants.why('dep/fails'), /deployed here and not launched yet/, 'before the first launch')
  await tenants.reconcile()
  clock += 7000
  t.equal(
    await tenants.why('dep/fails'),
    'image "dep/fails" is deployed here but its last launch (7 s ago) failed: no provider holds bafyfails: 0 peers answered'
  )
  // undeployed: the old failure is forgotten with it
  writeFileSync(file, JSON.stringify({ deployments: [] }))
  await tenants.reconcile()
  t.match(await tenants.why('dep/fails'), /is not deployed on this node/)
  writeFileSync(file, JSON.stringify({ deployments: [{ image: 'dep/fails', port: 8001 }] }))
  t.match(await tenants.why('dep/fails'), /deployed here and not launched yet/, 'redeployed: no stale failure')
})

t.test('running: nothing to explain', async t => {
  await tenants.deploy({ image: 'dep/later', port: 8002 })
  t.equal(await tenants.why('dep/later'), undefined)
})

t.test('404 floods: one lookup per name at a time, at most 4 at once, the rest answer without the chain', async t => {
  clock += 2000
  const before = lookups.length
  const same = [tenants.why('slow/a'), tenants.why('slow/a')]
  const others = ['slow/b', 'slow/c', 'slow/d', 'slow/e', 'slow/f'].map(async n => await tenants.why(n))
  // the fifth and sixth distinct names find every lookup slot taken: answered at once, no chain claim
  const early = await Promise.race([Promise.all([others[3], others[4]]), gate.then(() => 'released' as const)])
  t.not(early, 'released', 'answered while the four lookups still wait')
  if (early !== 'released')
    for (const r of early) t.match(r, /not deployed on this node \(quorate deploy slow\/[ef] --port P\)$/)
  t.same(lookups.slice(before), ['slow/a', 'slow/b', 'slow/c', 'slow/d'], 'four lookups, one for the repeated name')
  release()
  const answers = await Promise.all([...same, ...others.slice(0, 3)])
  for (const r of answers) t.match(r, /; it is not published on chain/, 'the waiting ones get the chain part')
  t.equal(await tenants.why('slow/a'), answers[0], 'reused within its time')
  t.equal(lookups.length, before + 4, 'no new lookup')
})
