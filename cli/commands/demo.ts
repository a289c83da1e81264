// quorate demo — the whole story on one machine (see cli/demo.ts and docs/demo.md).
import type { CommandModule } from 'yargs'
import { runDemo, summaryTable, type DemoResult } from '../demo.ts'
import { ChainClient } from '../../chain/index.ts'
import { startExplorerServer } from '../../agent/explorer/server.ts'
import { createLogger } from '../../encoding/log.ts'
import { CliExit, emit, type GlobalArgs } from '../output.ts'

interface DemoArgs extends GlobalArgs {
  nodes: number
  k: number
  keep: boolean
  listen: string
  chain: 'embedded' | 'cometbft'
}

const demo: CommandModule<GlobalArgs, DemoArgs> = {
  command: 'demo',
  describe:
    'run the whole story on 127.0.0.1: chain, vendors, certified agents with swtpm, a tenant image from IPFS, a refused tampered node',
  builder: y =>
    y
      .option('nodes', {
        type: 'number',
        default: 6,
        describe: 'honest agents (at least 6; the first five are genesis verifiers)'
      })
      .option('k', { type: 'number', default: 7, describe: 'committee size' })
      .option('chain', {
        choices: ['embedded', 'cometbft'] as const,
        default: 'embedded' as const,
        describe:
          'embedded validator, or 4 CometBFT validators (agents spread over three RPCs; the fourth killed mid-demo)'
      })
      .option('keep', {
        type: 'boolean',
        default: false,
        describe: 'keep the network running afterwards (chain, agents, work directory) with the dashboard, until Ctrl-C'
      })
      .option('listen', {
        type: 'string',
        default: '127.0.0.1:8480',
        describe: 'with --keep: HOST:PORT of the dashboard (port 0 = any free port)'
      }) as never,
  handler: async argv => {
    if (argv.nodes < 6) throw new CliExit(2, '--nodes must be at least 6 (five genesis verifiers and a joiner)')
    const out =
      argv.json === true
        ? (l: string) => {
            process.stderr.write(l + '\n')
          }
        : (l: string) => {
            process.stdout.write(l + '\n')
          }
    const hold = async (r: DemoResult): Promise<void> => {
      const chain = new ChainClient({ url: r.chain.url })
      const ui = await startExplorerServer({ chain, listen: argv.listen, logger: createLogger('quorate:explorer') })
      try {
        emit(argv, { ...r, dashboard: ui.url }, () => '\n' + summaryTable(r))
        out(`\nThe network keeps running. Dashboard: ${ui.url}  Chain RPC: ${r.chain.url}\nPress Ctrl-C to stop it.`)
        await new Promise<void>(resolve => {
          process.once('SIGINT', () => {
            resolve()
          })
          process.once('SIGTERM', () => {
            resolve()
          })
        })
        out('stopping the demo network…')
      } finally {
        await ui.stop()
        chain.close()
      }
    }
    const r = await runDemo({
      nodes: argv.nodes,
      committeeSize: argv.k,
      keep: argv.keep,
      chain: argv.chain,
      say: out,
      hold: argv.keep ? hold : undefined
    })
    if (argv.keep) {
      if (!r.ok) throw new CliExit(1, 'the demo did not end as expected (see the table above)')
      return
    }
    emit(argv, r, () => '\n' + summaryTable(r))
    if (!r.ok) throw new CliExit(1, 'the demo did not end as expected (see the table above)')
  }
}

export default [demo]
