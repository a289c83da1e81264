// quorate sim at small scale: the real chain state machine, draw and QC checks with a synthetic
// adversary. The legacy rules must show the hole (a bad node that drops losing rounds and retries
// gets certified); the current rules must close it, with committees sized for 40 bits.
import t from 'tap'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { fileURLToPath } from 'node:url'
import { runSimulation, allowedHeight, type SimOptions } from '../../agent/sim/engine.ts'
import { legacyRules, currentRules } from '../../agent/sim/rules.ts'
import {
  parseFraction,
  forgeProbability,
  blockedProbability,
  securityBitsAt,
  committeeSizeFor,
  thresholdOf
} from '../../agent/sim/analytic.ts'
import { monteCarlo, renderPlot } from '../../agent/sim/plot.ts'
import { InvalidInputError } from '../../encoding/errors.ts'

const F20 = { num: 1, den: 5 }
const base = (o: Partial<SimOptions>): SimOptions => ({
  nodes: 100,
  byzantine: F20,
  strategy: 'retry',
  hours: 1,
  rules: legacyRules(),
  seed: 'test-seed',
  ...o
})

t.test("analytic figures match the issue and the chain's sizing", async t => {
  t.equal(thresholdOf(7), 5)
  t.equal(forgeProbability(7, F20), 0.004672, 'k = 7, F = 0.2: 1 round in 214')
  t.equal(blockedProbability(7, F20), 0.148032, 'k = 7, F = 0.2: 15 % of honest rounds blocked')
  t.ok(Math.abs(forgeProbability(7, { num: 1, den: 10 }) - 1.765e-4) < 1e-8)
  t.ok(Math.abs(forgeProbability(7, { num: 1, den: 3 }) - 0.04527) < 1e-5)
  t.equal(securityBitsAt(7, F20), 7)
  const k = committeeSizeFor(F20, 40)
  t.equal(k, 48)
  t.ok(forgeProbability(k, F20) <= 2 ** -40)
  t.ok(forgeProbability(k - 1, F20) > 2 ** -40 || securityBitsAt(k - 1, F20) < 40, 'the smallest such k')
})

t.test('fractions are parsed exactly and bad ones refused', async t => {
  t.same(parseFraction('0.2'), { num: 1, den: 5 })
  t.same(parseFraction('1/3'), { num: 1, den: 3 })
  t.same(parseFraction('20%'), { num: 1, den: 5 })
  t.same(parseFraction('.25'), { num: 1, den: 4 })
  t.same(parseFraction('0'), { num: 0, den: 1 })
  for (const bad of ['1', '1.5', '3/2', '-0.1', 'abc', '1/0', '', '0.2.3'])
    t.throws(() => parseFraction(bad), InvalidInputError, `refuses ${JSON.stringify(bad)}`)
})

t.test("the height a refused request names is read from the chain's refusal", async t => {
  t.equal(allowedHeight('X is cooling down after 2 failed rounds: attest.request is allowed at height 1234'), 1234)
  t.equal(
    allowedHeight(
      'round 3 of X is open until height 400; a new round is allowed at height 401 if it is not recorded by then'
    ),
    401
  )
  t.equal(allowedHeight('round 4 must be greater than the latest round 5'), undefined)
})

t.test('legacy rules: a bad node that drops losing rounds and retries is certified (the hole)', async t => {
  const { result, detail } = await runSimulation(base({ hours: 2 }))
  t.equal(result.committeeSize, 7)
  t.equal(result.securityBits, 7)
  t.ok(result.forged > 0, `forged ${result.forged} after ${detail.firstForgeAfterRounds} adversary rounds`)
  t.equal(result.adversary.certified, 1)
  t.ok(result.adversary.roundsAttempted > 20, 'it retried many rounds')
  t.equal(result.adversary.blocksWaited, 0, 'nothing made it wait')
  t.equal(detail.memberRecords, 0, 'only nodes record under legacy rules')
  t.ok(result.recordBytes.max > 0, `attest.record at k = 7: ${result.recordBytes.max} bytes`)
})

t.test('legacy rules: colluders failing honest nodes block them about as often as the analysis says', async t => {
  const { result, detail } = await runSimulation(
    base({ strategy: 'collude', hours: 3, attesters: 50, ttlMs: 1800_000 })
  )
  t.ok(detail.honestRounds >= 100, `${detail.honestRounds} honest rounds`)
  // analytic 14.8 % (binomial); the draw from 100 candidates is hypergeometric, a little lower
  t.ok(result.honestBlockedRate > 0.05 && result.honestBlockedRate < 0.3, `blocked ${result.honestBlockedRate}`)
  t.ok(
    result.tpmOpsPerRound.activations > 3,
    `legacy: every new member activates the credential (${result.tpmOpsPerRound.activations} a round)`
  )
})

t.test('current rules: the same adversary never forges; it waits for deadlines and cooldowns', async t => {
  const rules = currentRules({ fraction: F20, securityBits: 40 })
  const { result, detail } = await runSimulation(base({ rules, hours: 2, attesters: 20, ttlMs: 1800_000 }))
  t.equal(result.forged, 0)
  t.equal(result.adversary.certified, 0)
  t.ok(result.committeeSize >= 40, `k = ${result.committeeSize}`)
  t.ok(result.analytic.forgePerRound <= 2 ** -40)
  t.ok(result.securityBits >= 40)
  t.ok(result.adversary.blocksWaited > 0, `waited ${result.adversary.blocksWaited} blocks`)
  t.ok(
    result.adversary.roundsAttempted < 20,
    `only ${result.adversary.roundsAttempted} rounds in 2 h (exponential cooldown)`
  )
  t.ok(detail.refusedRequests > 0, 'the chain refused early requests')
  t.ok(detail.honestPassed > 20, `${detail.honestPassed} honest passes`)
  if (rules.qcVersion === 3) t.ok(result.recordBytes.max <= 1024, `attest.record ${result.recordBytes.max} bytes`)
  t.equal(result.tpmOpsPerRound.quotes, 1, 'one quote a round')
  t.equal(result.tpmOpsPerRound.activations, 0, 'no ActivateCredential after the first certification')
})

t.test('current rules: members record the failing round a bad node would hide', async t => {
  const { result, detail } = await runSimulation(
    base({ rules: currentRules({ fraction: F20, securityBits: 40 }), strategy: 'collude', hours: 1, attesters: 5 })
  )
  t.equal(result.forged, 0)
  t.ok(detail.memberRecords > 0, `${detail.memberRecords} rounds recorded by members`)
  t.ok(result.adversary.roundsAttempted >= 1)
})

t.test('current rules: the chain drops colluders that stay silent, and no honest verifier', async t => {
  // 60 verifiers, 12 silent; k = 48 of 59 candidates draws most of them every round, so each
  // verifier is drawn in far more than the 32 rounds of a silence window
  const { result, detail } = await runSimulation(
    base({
      nodes: 60,
      rules: currentRules({ fraction: F20, securityBits: 40 }),
      strategy: 'silent',
      hours: 2,
      attesters: 20,
      ttlMs: 1800_000
    })
  )
  t.equal(detail.colluders, 12)
  t.equal(detail.dropped.colluders, 12, 'every silent colluder is dropped from the candidates')
  t.equal(detail.dropped.honest, 0, 'honest members are in every QC they could sign, so none is dropped')
  t.equal(result.forged, 0)
})

t.test('a run is deterministic for a seed', async t => {
  const a = await runSimulation(base({ hours: 0.5 }))
  const b = await runSimulation(base({ hours: 0.5 }))
  t.same(a.result, b.result)
  const c = await runSimulation(base({ hours: 0.5, seed: 'another' }))
  t.not(JSON.stringify(a.result), JSON.stringify(c.result), 'another seed, another run')
})

t.test('Monte Carlo over the real draw agrees with the analysis', async t => {
  const points = monteCarlo({
    draws: 3000,
    candidates: 300,
    seed: 'mc',
    ks: [7, 16],
    fractions: [{ f: F20, label: 'F = 0.2' }]
  })
  const p7 = points.find(p => p.k === 7)
  t.ok(p7 !== undefined)
  if (p7 === undefined) return
  // σ of a rate from 3000 draws at 0.148 is 0.0065
  t.ok(Math.abs(p7.blocked - blockedProbability(7, F20)) < 0.03, `blocked measured ${p7.blocked}`)
  t.ok(p7.forge < 0.02, `forge measured ${p7.forge}`)
  const svg = renderPlot(points, 'note')
  t.match(svg, /^<svg /)
  t.match(svg, /<path d="M/)
  t.match(svg, /<rect x=[^>]*><title>F = 0.2 k=7 blocked/)
  t.ok(p7.blockedHits > 100, 'hit counts come with the rates')
})

const cli = fileURLToPath(new URL('../../cli/main.ts', import.meta.url))
const run = async (args: string[]): Promise<{ code: number; stdout: string; stderr: string }> => {
  try {
    const r = await promisify(execFile)(process.execPath, [cli, ...args], { timeout: 120_000 })
    return { code: 0, stdout: r.stdout, stderr: r.stderr }
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string }
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' }
  }
}

t.test('quorate sim --json prints exactly the agreed object; progress goes to stderr', async t => {
  const r = await run([
    'sim',
    '--nodes',
    '20',
    '--byzantine',
    '0.2',
    '--strategy',
    'retry',
    '--rules',
    'legacy',
    '--hours',
    '0.2',
    '--json'
  ])
  t.equal(r.code, 0, r.stderr)
  const lines = r.stdout.trim().split('\n')
  t.equal(lines.length, 1, 'one object on stdout')
  const o = JSON.parse(lines[0]) as Record<string, unknown>
  t.same(Object.keys(o).sort(), [
    'adversary',
    'analytic',
    'byzantineFraction',
    'chainBytesPerHour',
    'committeeSize',
    'forged',
    'honestBlockedRate',
    'nodes',
    'recordBytes',
    'rounds',
    'securityBits',
    'tpmOpsPerRound',
    'verifierWork'
  ])
  t.same(Object.keys(o.adversary as object).sort(), ['blocksWaited', 'certified', 'roundsAttempted'])
  t.same(Object.keys(o.analytic as object).sort(), ['blockedPerRound', 'forgePerRound'])
  t.match(r.stderr, /sim: /)
})

t.test('quorate sim refuses bad options and says why', async t => {
  for (const [args, msg] of [
    [['--nodes', '3'], /at least 4/],
    [['--byzantine', '1.5'], /fraction/],
    [['--hours', '0'], /hours/],
    [['--rules', 'current', '--assumed-fraction', '1/3'], /1\/3/]
  ] as const) {
    const r = await run(['sim', ...args, '--json'])
    t.equal(r.code, 1, `${args.join(' ')} refused`)
    t.match(r.stderr, msg)
  }
})
