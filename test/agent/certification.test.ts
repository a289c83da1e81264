// The agent's state handling around certification rounds (agent/certification.ts), with a fake
// round function: the real Lifecycle, Metrics and transition table; a gate that records calls.
// The real agent going through failed and passing rounds is test/agent/rounds.test.ts.
import t from 'tap'
import { Certification } from '../../agent/certification.ts'
import { Lifecycle, type StateKind } from '../../agent/lifecycle.ts'
import { Metrics } from '../../agent/metrics.ts'
import type { CertificationStatus } from '../../containers/runner.ts'
import type { RoundProgress, RoundResult } from '../../agent/p2p/index.ts'

function result(round: number, outcome: 'pass' | 'fail'): RoundResult {
  // an assertion, not an annotation: RoundResult is growing fields (failedClaims) this test does not read
  return {
    round,
    outcome,
    expiresAt: 1_000_000 + round,
    committee: ['a', 'b', 'c', 'd'],
    threshold: 3,
    qc: new Uint8Array(1),
    failedClaims: outcome === 'pass' ? [] : ['firmware'],
    pass: outcome === 'pass' ? 4 : 0,
    fail: outcome === 'pass' ? 0 : 4,
    unresponsive: []
  } as RoundResult
}

interface Setup {
  cert: Certification
  life: Lifecycle
  metrics: Metrics
  gate: CertificationStatus[]
  kinds: StateKind[]
}

function setup(outcomes: Array<'pass' | 'fail' | Error>): Setup {
  const life = new Lifecycle()
  life.to({ kind: 'measuring' })
  life.to({ kind: 'registering' })
  life.to({ kind: 'awaiting-certification', round: 0 })
  const kinds: StateKind[] = []
  life.onChange(s => {
    kinds.push(s.kind)
  })
  const metrics = new Metrics()
  const gate: CertificationStatus[] = []
  let round = 0
  const cert = new Certification({
    lifecycle: life,
    metrics,
    gate: {
      setCertification: async s => {
        gate.push(s)
      }
    },
    round: async (onProgress: (p: RoundProgress) => void) => {
      const next = outcomes.shift()
      if (next === undefined) throw new Error('no more rounds scripted')
      if (next instanceof Error) throw next
      round++
      onProgress({ type: 'requested', round })
      return result(round, next)
    }
  })
  return { cert, life, metrics, gate, kinds }
}

t.test('fail, then pass: certified in one round, the gate opened', async t => {
  const s = setup(['fail', 'pass'])
  t.equal((await s.cert.run()).outcome, 'fail')
  t.equal(s.life.state.kind, 'revoked')
  t.same(s.gate, [{ certified: false, reason: 'committee refused certification' }])
  const r = await s.cert.run()
  t.equal(r.outcome, 'pass')
  t.same(s.life.state, { kind: 'certified', round: 2, expiresAt: r.expiresAt })
  t.same(
    s.gate.at(-1),
    { certified: true, expiresAt: r.expiresAt },
    'setCertification opened the gate for the passing QC'
  )
  t.same(s.kinds, ['awaiting-certification', 'revoked', 'awaiting-certification', 'certified'])
  t.equal(s.metrics.value('quorate_rounds_total', { outcome: 'fail' }), 1)
  t.equal(s.metrics.value('quorate_rounds_total', { outcome: 'pass' }), 1)
  t.equal(s.metrics.value('quorate_rounds_total', { outcome: 'error' }), undefined, 'no round counted as an error')
  t.equal(s.metrics.value('quorate_certified'), 1)
})

t.test('fail twice: revoked → awaiting-certification → revoked, no illegal transition', async t => {
  const s = setup(['fail', 'fail'])
  await s.cert.run()
  await s.cert.run()
  t.equal(s.life.state.kind, 'revoked')
  t.same(s.kinds, ['awaiting-certification', 'revoked', 'awaiting-certification', 'revoked'])
  t.notOk(s.kinds.includes('degraded'))
  t.equal(s.metrics.value('quorate_rounds_total', { outcome: 'fail' }), 2)
  t.equal(s.metrics.value('quorate_verdicts_received_total', { pass: 'false' }), 8)
})

t.test('re-attestation stays certified until its outcome; a failing one revokes', async t => {
  const s = setup(['pass', 'pass', 'fail'])
  await s.cert.run()
  await s.cert.run()
  t.same(s.kinds, ['awaiting-certification', 'certified', 'certified'], 'certified → certified while re-attesting')
  await s.cert.run()
  t.equal(s.life.state.kind, 'revoked')
  t.same(s.gate.at(-1), { certified: false, reason: 'committee refused certification' })
})

t.test('a round that does not end is counted once, as an error, and changes nothing', async t => {
  const s = setup(['fail', new Error('chain unreachable'), 'pass'])
  await s.cert.run()
  await t.rejects(s.cert.run(), /chain unreachable/)
  t.equal(s.life.state.kind, 'revoked', 'still revoked: a new round may start')
  t.equal(s.metrics.value('quorate_rounds_total', { outcome: 'error' }), 1)
  t.equal((await s.cert.run()).outcome, 'pass')
  t.equal(s.life.state.kind, 'certified')
  t.equal(s.metrics.value('quorate_rounds_total', { outcome: 'error' }), 1, 'the pass is not also an error')
})

t.test('from degraded, the next round opens and may pass', async t => {
  const s = setup(['pass'])
  s.life.to({ kind: 'degraded', reason: 'chain down', previous: 'awaiting-certification' })
  await s.cert.run()
  t.equal(s.life.state.kind, 'certified')
})

t.test('a round that ends while the agent stops leaves the state to stop()', async t => {
  const s = setup(['pass'])
  s.life.to({ kind: 'stopping' })
  const r = await s.cert.run()
  t.equal(r.outcome, 'pass')
  t.equal(s.life.state.kind, 'stopping')
  t.same(s.gate, [], 'the gate is not opened by a round ending during shutdown')
})
