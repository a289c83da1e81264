// quorate demo — the whole story on one machine (see cli/demo.ts and docs/demo.md).
import type { CommandModule } from 'yargs'
import { runDemo, summaryTable } from '../demo.ts'
import { CliExit, emit, type GlobalArgs } from '../output.ts'

interface DemoArgs extends GlobalArgs { nodes: number, k: number, keep: boolean }

const demo: CommandModule<GlobalArgs, DemoArgs> = {
  command: 'demo',
  describe: 'run the whole story on 127.0.0.1: chain, vendors, certified agents with swtpm, a tenant image from IPFS, a refused tampered node',
  builder: y => y
    .option('nodes', { type: 'number', default: 6, describe: 'honest agents (at least 6; the first five are genesis verifiers)' })
    .option('k', { type: 'number', default: 7, describe: 'committee size' })
    .option('keep', { type: 'boolean', default: false, describe: 'keep the work directory (chain, agent homes) for inspection' }) as never,
  handler: async argv => {
    if (argv.nodes < 6) throw new CliExit(2, '--nodes must be at least 6 (five genesis verifiers and a joiner)')
    const out = argv.json === true ? (l: string) => { process.stderr.write(l + '\n') } : (l: string) => { process.stdout.write(l + '\n') }
    const r = await runDemo({ nodes: argv.nodes, committeeSize: argv.k, keep: argv.keep, say: out })
    emit(argv, r, () => '\n' + summaryTable(r))
    if (!r.ok) throw new CliExit(1, 'the demo did not end as expected (see the table above)')
  }
}

export default [demo]
