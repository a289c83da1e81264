// agent/tenants.ts with its narrow ports faked (a runner that records, a probe that answers what
// the test says): what reconcile asks the gate to start, relaunch and stop. The real agent with
// Docker is test/agent/daemon.test.ts and test/agent/rounds.test.ts.
import t from 'tap'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Tenants, type ContainerProbe } from '../../agent/tenants.ts'
import { Metrics } from '../../agent/metrics.ts'
import type { LaunchRequest, RunningContainer } from '../../containers/index.ts'
import { silentLogger } from '../../encoding/log.ts'

const dir = mkdtempSync(join(tmpdir(), 'quorate-tenants-'))
t.teardown(() => {
  rmSync(dir, { recursive: true, force: true })
})

interface Setup {
  tenants: Tenants
  running: Map<string, RunningContainer>
  launched: LaunchRequest[]
  stopped: string[]
  metrics: Metrics
  file: string
  ac: AbortController
}

function setup(opts: { probe?: ContainerProbe['running']; refuse?: string } = {}): Setup {
  const running = new Map<string, RunningContainer>()
  const launched: LaunchRequest[] = []
  const stopped: string[] = []
  let n = 0
  const metrics = new Metrics()
  const file = join(dir, `deployments-${Math.random().toString(36).slice(2)}.json`)
  const ac = new AbortController()
  const runner = {
    launch: async (req: LaunchRequest): Promise<RunningContainer> => {
      launched.push(req)
      if (req.image === opts.refuse) throw new Error('not certified')
      req.onProgress?.({ phase: 'fetch', bytes: 100 })
      const c = { id: `c${++n}`, image: req.image, port: req.port } as unknown as RunningContainer // only what Tenants reads
      running.set(c.id, c)
      return c
    },
    list: () => [...running.values()],
    get: (image: string) => [...running.values()].find(c => c.image === image),
    stop: async (id: string) => {
      stopped.push(id)
      return running.delete(id)
    }
  }
  const tenants = new Tenants({
    runner,
    probe: { running: opts.probe ?? (async () => true) },
    configured: [{ image: 'cfg/a', port: 8001 }],
    deploymentsFile: file,
    providers: async () => ['/ip4/127.0.0.1/tcp/1/p2p/peer'],
    metrics,
    signal: ac.signal,
    logger: silentLogger()
  })
  return { tenants, running, launched, stopped, metrics, file, ac }
}

t.test('starts what is configured or deployed, stops what is no longer wanted', async t => {
  const s = setup()
  writeFileSync(s.file, JSON.stringify({ deployments: [{ image: 'file/b', port: 8002 }] }))
  await s.tenants.reconcile()
  t.same(
    s.launched.map(l => l.image),
    ['cfg/a', 'file/b']
  )
  t.same(s.launched[0].providers, ['/ip4/127.0.0.1/tcp/1/p2p/peer'], 'providers asked at launch')
  await s.tenants.reconcile()
  t.equal(s.launched.length, 2, 'nothing launched twice')
  writeFileSync(s.file, JSON.stringify({ deployments: [] }))
  await s.tenants.reconcile()
  t.same(
    [...s.running.values()].map(c => c.image),
    ['cfg/a'],
    'undeployed tenant stopped'
  )
  t.equal(s.stopped.length, 1)
  await s.tenants.deploy({ image: 'api/c', port: 8003 })
  await s.tenants.reconcile()
  t.same(
    [...s.running.values()].map(c => c.image).sort(),
    ['api/c', 'cfg/a'],
    'deploy() is wanted on later reconciles too'
  )
  t.equal(s.metrics.value('quorate_tenant_launches_total', { outcome: 'started' }), 3)
  t.equal(s.metrics.value('quorate_image_fetched_bytes_total'), 300)
})

t.test('a container Docker lost is relaunched; Docker unreachable changes nothing', async t => {
  let answer: 'running' | 'gone' | 'unreachable' = 'running'
  const s = setup({
    probe: async () => {
      if (answer === 'unreachable') throw new Error('connect ENOENT /var/run/docker.sock')
      return answer === 'running'
    }
  })
  await s.tenants.reconcile()
  const first = [...s.running.keys()]
  answer = 'unreachable'
  await s.tenants.reconcile()
  t.same([...s.running.keys()], first, 'kept while Docker cannot be asked')
  answer = 'gone'
  const gone = s.tenants.reconcile()
  await gone
  t.same(s.stopped, first, 'the lost container is cleaned up')
  t.equal(s.running.size, 1)
  t.not([...s.running.keys()][0], first[0], 'and a new one launched through the gate')
  t.equal(s.metrics.value('quorate_tenant_relaunches_total', { image: 'cfg/a' }), 1)
})

t.test('an unreadable deployments.json keeps the current tenants; a refused launch is counted', async t => {
  const s = setup({ refuse: 'file/b' })
  await s.tenants.reconcile()
  writeFileSync(s.file, '{not json')
  await s.tenants.reconcile()
  t.same(
    [...s.running.values()].map(c => c.image),
    ['cfg/a'],
    'nothing stopped on a bad file'
  )
  writeFileSync(s.file, JSON.stringify({ deployments: [{ image: 'file/b', port: 8002 }] }))
  await s.tenants.reconcile()
  t.equal(s.metrics.value('quorate_tenant_launches_total', { outcome: 'refused' }), 1)
  await t.rejects(s.tenants.deploy({ image: 'file/b', port: 8002 }), /not certified/, 'deploy() reports the refusal')
})
