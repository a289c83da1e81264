// agent/sim — `quorate sim`: certification against an adversary, on the product's own chain state
// machine, committee draw and QC checks (docs/sim.md). Contracts first:
//
//   runSimulation(options) → { result (the --json object), detail }   engine.ts
//   legacyRules() / currentRules(params) → RuleSet                    rules.ts
//   forge/blocked probability, security bits, committee size          analytic.ts (sizing.ts underneath)
//   monteCarlo / renderPlot / committeePlot → docs/committee-security.svg   plot.ts
export type { SimOptions, SimResult, SimDetail, Strategy } from './engine.ts'
export { runSimulation, allowedHeight, STRATEGIES, DEFAULT_ATTESTERS, SimAbortedError } from './engine.ts'
export type { RuleSet, RulesName, CurrentParams, QcInput } from './rules.ts'
export { legacyRules, currentRules, chainTakesBls } from './rules.ts'
export type { Fraction } from './analytic.ts'
export {
  parseFraction,
  fractionValue,
  thresholdOf,
  forgeProbability,
  blockedProbability,
  securityBitsAt,
  committeeSizeFor
} from './analytic.ts'
export type { MonteCarloPoint } from './plot.ts'
export { monteCarlo, renderPlot, committeePlot, PLOT_FRACTIONS, PLOT_POINTS_K, PLOT_K_MAX, MIN_HITS } from './plot.ts'
export type { Population, SimNode, Role } from './population.ts'
export { makePopulation, simKey, simBlsKey, Rng } from './population.ts'
