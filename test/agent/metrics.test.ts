// Prometheus naming (agent/metrics.ts): `_total` belongs to counters, counters never go down, and
// the agent's counts that only grow (sessions served, images served) are typed counter.
import t from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Metrics } from '../../agent/metrics.ts'
import { Agent } from '../../agent/agent.ts'
import { loadConfig } from '../../agent/config.ts'
import { InvalidInputError } from '../../encoding/errors.ts'

t.test('a gauge may not end in _total and a counter must', async t => {
  const m = new Metrics()
  t.throws(() => m.gauge('quorate_sessions_total', 'x'), InvalidInputError)
  t.throws(() => m.counter('quorate_sessions', 'x'), InvalidInputError)
  t.throws(() => m.gauge('bad name', 'x'), InvalidInputError)
  m.counter('quorate_x_total', 'x')
  t.throws(() => m.gauge('quorate_x_total', 'x'), InvalidInputError, 'one name, one type')
  t.equal(m.render().includes('# TYPE'), true)
})

t.test('a counter set from a running total never goes down', async t => {
  const m = new Metrics()
  const c = m.counter('quorate_served_total', 'served')
  c.setTotal(3, { channel: 'bulk' })
  c.setTotal(3, { channel: 'bulk' })
  c.setTotal(5, { channel: 'bulk' })
  t.throws(() => {
    c.setTotal(4, { channel: 'bulk' })
  }, InvalidInputError)
  t.throws(() => {
    c.inc({}, -1)
  }, InvalidInputError)
  t.equal(m.value('quorate_served_total', { channel: 'bulk' }), 5)
  t.match(m.render(), /# TYPE quorate_served_total counter\nquorate_served_total\{channel="bulk"\} 5\n/)
})

t.test("the agent's registry: every *_total is a counter, no gauge ends in _total", async t => {
  const home = mkdtempSync(join(tmpdir(), 'quorate-metrics-'))
  t.teardown(() => {
    rmSync(home, { recursive: true, force: true })
  })
  const a = new Agent({ config: loadConfig({ env: {}, flags: { home } }) })
  const types = new Map([...a.metrics.render().matchAll(/^# TYPE (\S+) (\S+)$/gm)].map(x => [x[1], x[2]]))
  t.equal(types.get('quorate_verifier_sessions_total'), 'counter')
  t.equal(types.get('quorate_image_dags_served_total'), 'counter')
  for (const [name, type] of types) t.equal(name.endsWith('_total'), type === 'counter', `${name} is a ${type}`)
})
