// Simulator cost (issue 10, docs/sim.md): wall time of `quorate sim` for one simulated hour of
// 1,000 verifiers under each rule set, split into setup (keys, BLS proofs, registrations) and the
// block loop, with the figures the run produced. No target: the simulator is a tool, not a path
// the product waits on; the 10,000-node, 24-hour figure is measured by hand (docs/sim.md).
//   node_modules/.bin/node bench/sim.ts
import { fileURLToPath } from 'node:url'
import { runSimulation } from '../agent/sim/engine.ts'
import { currentRules, legacyRules } from '../agent/sim/rules.ts'

export async function run(): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {}
  for (const [name, rules] of [
    ['legacy', legacyRules()],
    ['current', currentRules({ fraction: { num: 1, den: 5 }, securityBits: 40 })]
  ] as const) {
    const { result, detail } = await runSimulation({
      nodes: 1000,
      byzantine: { num: 1, den: 5 },
      strategy: 'retry',
      hours: 1,
      rules,
      seed: 'bench'
    })
    out[name] = {
      nodes: 1000,
      simulatedHours: 1,
      setupSeconds: detail.wallSeconds.setup,
      runSeconds: detail.wallSeconds.run,
      rounds: result.rounds,
      roundsPerSecond: Math.round(result.rounds / detail.wallSeconds.run),
      forged: result.forged,
      committeeSize: result.committeeSize,
      recordBytesMax: result.recordBytes.max,
      qcVersion: rules.qcVersion
    }
  }
  return out
}

if (process.argv[1] === fileURLToPath(import.meta.url))
  process.stdout.write(JSON.stringify(await run(), null, 2) + '\n')
