// agent/usage.ts with a faked sender: one record per period with traffic, nothing lost when the
// chain does not take it, periods never overlap, records bounded (the rest carried over).
import t from 'tap'
import { UsageReporter } from '../../agent/usage.ts'
import type { UsageRecordBody } from '../../chain/types.ts'
import { silentLogger } from '../../encoding/log.ts'

function setup(maxApps?: number): {
  r: UsageReporter
  sent: UsageRecordBody[]
  clock: { now: number }
  chain: { up: boolean }
} {
  const sent: UsageRecordBody[] = []
  const clock = { now: 1000 }
  const chain = { up: true }
  const r = new UsageReporter({
    nodeId: 'node-1',
    send: async body => {
      if (!chain.up) throw new Error('connect ECONNREFUSED')
      sent.push(structuredClone(body))
    },
    maxApps,
    logger: silentLogger(),
    now: () => clock.now
  })
  return { r, sent, clock, chain }
}

t.test('one record per period with traffic, none without', async t => {
  const s = setup()
  s.clock.now = 2000
  t.equal(await s.r.flush(), undefined, 'no traffic, no record')
  s.r.add('a', 10, 100)
  s.r.add('a', 5, 50)
  s.r.add('b', 1, 2)
  s.clock.now = 3000
  const body = await s.r.flush()
  t.same(body, {
    nodeId: 'node-1',
    from: 2000,
    to: 3000,
    apps: [
      { app: 'a', requests: 2, bytesIn: 15, bytesOut: 150 },
      { app: 'b', requests: 1, bytesIn: 1, bytesOut: 2 }
    ]
  })
  t.same(s.r.pending(), [], 'counts reset')
  s.r.add('a', 1, 1)
  s.clock.now = 4000
  await s.r.flush()
  t.equal(s.sent[1].from, 3000, 'the next period starts where the last ended')
})

t.test('chain unreachable: counts carry over into the next, longer period', async t => {
  const s = setup()
  s.r.add('a', 10, 100)
  s.clock.now = 2000
  s.chain.up = false
  t.equal(await s.r.flush(), undefined)
  s.r.add('a', 1, 1)
  s.r.add('c', 2, 2)
  s.clock.now = 3000
  await s.r.flush()
  t.equal(s.sent.length, 0)
  s.chain.up = true
  s.clock.now = 4000
  const body = await s.r.flush()
  t.same(body, {
    nodeId: 'node-1',
    from: 1000,
    to: 4000,
    apps: [
      { app: 'a', requests: 2, bytesIn: 11, bytesOut: 101 },
      { app: 'c', requests: 1, bytesIn: 2, bytesOut: 2 }
    ]
  })
})

t.test('bounded: the apps with most requests go first, the rest carry over', async t => {
  const s = setup(2)
  for (let i = 0; i < 3; i++) s.r.add('busy', 1, 1)
  for (let i = 0; i < 2; i++) s.r.add('mid', 1, 1)
  s.r.add('quiet', 1, 1)
  s.clock.now = 2000
  const first = await s.r.flush()
  t.same(
    first?.apps.map(a => a.app),
    ['busy', 'mid']
  )
  t.same(s.r.pending(), [{ app: 'quiet', requests: 1, bytesIn: 1, bytesOut: 1 }], 'quiet carried over')
  s.clock.now = 3000
  const second = await s.r.flush()
  t.same(second?.apps, [{ app: 'quiet', requests: 1, bytesIn: 1, bytesOut: 1 }])
  t.equal(second?.from, 2000, 'no overlap')
})

t.test('flushes do not overlap: a second flush while one is sending shares it', async t => {
  const s = setup()
  s.r.add('a', 1, 1)
  s.clock.now = 2000
  const [x, y] = await Promise.all([s.r.flush(), s.r.flush()])
  t.equal(x, y)
  t.equal(s.sent.length, 1)
})

t.test('a record the chain refuses is dropped, not retried for ever', async t => {
  const sent: UsageRecordBody[] = []
  let refuse = true
  const clock = { now: 1000 }
  const r = new UsageReporter({
    nodeId: 'node-1',
    send: async body => {
      if (refuse)
        throw Object.assign(new Error('usage.record names app "x", which was never published'), {
          disposition: 'reject'
        })
      sent.push(body)
    },
    logger: silentLogger(),
    now: () => clock.now
  })
  r.add('x', 1, 1)
  clock.now = 2000
  t.equal(await r.flush(), undefined)
  t.same(r.pending(), [], 'dropped')
  refuse = false
  r.add('a', 1, 1)
  clock.now = 3000
  t.equal((await r.flush())?.from, 2000, 'the next period starts after the refused one')
})
