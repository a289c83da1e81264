// `quorate sim` — certification against an adversary, simulated: the real chain state machine in
// memory, the real committee draw, real verdict signatures and QC checks; synthetic TPM evidence
// and network. `quorate sim plot` draws docs/committee-security.svg. See docs/sim.md.
import type { CommandModule } from 'yargs'
import { writeFile } from 'node:fs/promises'
import {
  committeePlot,
  currentRules,
  legacyRules,
  parseFraction,
  runSimulation,
  STRATEGIES,
  type RulesName,
  type Strategy
} from '../../agent/sim/index.ts'
import { InvalidInputError } from '../../encoding/errors.ts'
import { emit, type GlobalArgs } from '../output.ts'

interface SimArgs extends GlobalArgs {
  nodes: number
  byzantine: string
  strategy: Strategy
  hours: number
  rules: RulesName
  seed: string
  bad: number
  attesters?: number
  'ttl-minutes': number
  'block-ms': number
  'security-bits': number
  'assumed-fraction': string
  quiet?: boolean
}

interface PlotArgs extends GlobalArgs {
  out: string
  draws: number
  candidates: number
  seed: string
  quiet?: boolean
}

function positiveInt(v: number, what: string, max: number): number {
  if (!Number.isSafeInteger(v) || v < 1 || v > max)
    throw new InvalidInputError(`--${what} must be an integer 1..${max}, got ${v}`)
  return v
}

const plot: CommandModule<GlobalArgs, PlotArgs> = {
  command: 'plot',
  describe: 'draw forge and blocked probability against committee size k (analytic curves, Monte Carlo points) as SVG',
  builder: y =>
    y
      .option('out', { type: 'string', default: 'docs/committee-security.svg', describe: 'SVG file to write' })
      .option('draws', {
        type: 'number',
        default: 20000,
        describe: 'committee draws per fraction for the Monte Carlo points'
      })
      .option('candidates', { type: 'number', default: 1000, describe: 'candidate pool the draws are taken from' })
      .option('seed', { type: 'string', default: 'quorate-sim', describe: 'seed of the draws (deterministic)' })
      .option('quiet', { type: 'boolean', describe: 'no progress on stderr' }),
  handler: async argv => {
    const draws = positiveInt(argv.draws, 'draws', 10_000_000)
    const candidates = positiveInt(argv.candidates, 'candidates', 100_000)
    const r = committeePlot({
      draws,
      candidates,
      seed: argv.seed,
      onProgress:
        argv.quiet === true
          ? undefined
          : m => {
              process.stderr.write(m + '\n')
            }
    })
    await writeFile(argv.out, r.svg)
    emit(
      argv,
      { out: argv.out, draws, candidates, points: r.points },
      () =>
        `wrote ${argv.out} (${r.points.length} Monte Carlo points from ${draws} draws per fraction over ${candidates} candidates)`
    )
  }
}

const sim: CommandModule<GlobalArgs, SimArgs> = {
  command: 'sim',
  describe: 'simulate certification against colluding verifiers on the real chain state machine (in memory)',
  builder: y =>
    y
      .command(plot)
      .option('nodes', { type: 'number', default: 1000, describe: 'verifier pool (genesis verifiers)' })
      .option('byzantine', {
        type: 'string',
        default: '0.2',
        describe: 'fraction of the pool that colludes (0.2, 1/3, 20%)'
      })
      .option('strategy', {
        choices: STRATEGIES,
        default: 'retry' as Strategy,
        describe:
          'collude: pass bad nodes, fail honest ones; silent: never answer; retry: a bad node retries as fast as the chain allows; all: retry + collude'
      })
      .option('hours', { type: 'number', default: 24, describe: 'simulated hours' })
      .option('rules', {
        choices: ['legacy', 'current'] as const,
        default: 'current' as RulesName,
        describe: 'legacy: k = 7, rounds the node may drop; current: issue 10 rules'
      })
      .option('seed', {
        type: 'string',
        default: 'quorate-sim',
        describe: 'seed for keys, roles and schedule (a run is deterministic)'
      })
      .option('bad', { type: 'number', default: 1, describe: 'nodes with bad firmware trying to get certified' })
      .option('attesters', {
        type: 'number',
        describe:
          'honest verifiers that re-attest during the run (default: all, at most 1000; committees are drawn from the whole pool)'
      })
      .option('ttl-minutes', {
        type: 'number',
        default: 1440,
        describe: 'certification lifetime (genesis certTtl); nodes re-attest before it ends'
      })
      .option('block-ms', { type: 'number', default: 1000, describe: 'block interval in simulated ms' })
      .option('security-bits', { type: 'number', default: 40, describe: 'current rules: genesis security level' })
      .option('assumed-fraction', {
        type: 'string',
        default: '1/5',
        describe: 'current rules: adversary fraction the genesis sizes committees for'
      })
      .option('quiet', { type: 'boolean', describe: 'no progress on stderr' }),
  handler: async argv => {
    const nodes = positiveInt(argv.nodes, 'nodes', 100_000)
    if (nodes < 4) throw new InvalidInputError('--nodes must be at least 4 (3f + 1 with f ≥ 1)')
    if (!(argv.hours > 0 && argv.hours <= 24 * 365))
      throw new InvalidInputError('--hours must be above 0 and at most a year')
    const bits = positiveInt(argv['security-bits'], 'security-bits', 128)
    const rules =
      argv.rules === 'legacy'
        ? legacyRules()
        : currentRules({ fraction: parseFraction(argv['assumed-fraction']), securityBits: bits })
    const ac = new AbortController()
    const onSigint = (): void => {
      ac.abort()
    }
    process.once('SIGINT', onSigint)
    try {
      const { result, detail } = await runSimulation({
        nodes,
        byzantine: parseFraction(argv.byzantine),
        strategy: argv.strategy,
        hours: argv.hours,
        rules,
        seed: argv.seed,
        bad: positiveInt(argv.bad, 'bad', 1000),
        attesters: argv.attesters === undefined ? undefined : positiveInt(argv.attesters, 'attesters', 100_000),
        ttlMs: positiveInt(argv['ttl-minutes'], 'ttl-minutes', 7 * 24 * 60) * 60_000,
        blockMs: positiveInt(argv['block-ms'], 'block-ms', 3600_000),
        signal: ac.signal,
        onProgress:
          argv.quiet === true
            ? undefined
            : m => {
                process.stderr.write(m + '\n')
              }
      })
      if (argv.quiet !== true) {
        process.stderr.write(
          `sim: done in ${(detail.wallSeconds.setup + detail.wallSeconds.run).toFixed(1)} s (setup ${detail.wallSeconds.setup} s, run ${detail.wallSeconds.run} s); ${detail.honestRounds} honest rounds, ${detail.memberRecords} recorded by members, ${detail.refusedRequests} requests refused; dropped by the chain: ${detail.dropped.colluders} colluders, ${detail.dropped.honest} honest verifiers\n`
        )
        for (const m of detail.missing) process.stderr.write(`sim: not in this build: ${m}\n`)
      }
      emit(argv, result, () =>
        [
          `rules ${detail.rules}, strategy ${detail.strategy}: ${result.nodes} verifiers, ${detail.colluders} colluding (F = ${result.byzantineFraction}), ${detail.badNodes} bad node(s), ${detail.attesters} honest attesters, ${detail.hours} h`,
          `committee k = ${result.committeeSize} (${result.securityBits} bits at this F); analytic per round: forge ${result.analytic.forgePerRound.toExponential(3)}, blocked ${result.analytic.blockedPerRound.toExponential(3)}`,
          `rounds ${result.rounds}; FORGED ${result.forged}${detail.firstForgeAfterRounds !== undefined ? ` (first after ${detail.firstForgeAfterRounds} adversary rounds)` : ''}; honest rounds blocked ${(result.honestBlockedRate * 100).toFixed(1)} %`,
          `adversary: ${result.adversary.roundsAttempted} rounds, certified ${result.adversary.certified}, waited ${result.adversary.blocksWaited} blocks`,
          `attest.record ${result.recordBytes.mean} B mean, ${result.recordBytes.max} B max; chain ${(result.chainBytesPerHour / 1e6).toFixed(2)} MB/h of transactions`,
          `verifier appraisals per node-hour: mean ${result.verifierWork.appraisalsPerNodePerHour.mean}, max ${result.verifierWork.appraisalsPerNodePerHour.max}`,
          `TPM per round after first certification: ${result.tpmOpsPerRound.quotes} quotes, ${result.tpmOpsPerRound.activations} ActivateCredential`
        ].join('\n')
      )
    } finally {
      process.removeListener('SIGINT', onSigint)
    }
  }
}

export default [sim]
