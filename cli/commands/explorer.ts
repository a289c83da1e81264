// `quorate explorer` — the read-only network dashboard in a browser: nodes, rounds and
// committees, images, chain activity, vendors; updated live as blocks arrive.
import type { CommandModule } from 'yargs'
import { startExplorerServer } from '../../agent/explorer/server.ts'
import { createLogger } from '../../encoding/log.ts'
import { emit, progress, type GlobalArgs } from '../output.ts'
import { client, withRpc, type RpcArgs } from './chain.ts'

interface ExplorerArgs extends RpcArgs {
  listen: string
}

const explorer: CommandModule<GlobalArgs, ExplorerArgs> = {
  command: 'explorer',
  describe: 'serve the network dashboard (read-only) for a chain; runs until Ctrl-C',
  builder: y =>
    withRpc(y).option('listen', {
      type: 'string',
      default: '127.0.0.1:8480',
      describe: 'HOST:PORT the dashboard listens on (port 0 = any free port)'
    }),
  handler: async argv => {
    const chain = client(argv)
    const server = await startExplorerServer({ chain, listen: argv.listen, logger: createLogger('quorate:explorer') })
    try {
      progress(argv, `reading the chain at ${chain.url.origin}…`)
      const ac = new AbortController()
      const stop = new Promise<void>(resolve => {
        const on = (): void => {
          ac.abort()
          resolve()
        }
        process.once('SIGINT', on)
        process.once('SIGTERM', on)
      })
      const s = await Promise.race([server.explorer.ready({ signal: ac.signal }), stop])
      if (s !== undefined) {
        emit(
          argv,
          { url: server.url, rpc: chain.url.href, chainId: s.chainId, height: s.height, nodes: s.nodes.length },
          `explorer for chain ${s.chainId} (height ${s.height}, ${s.nodes.length} nodes) at ${server.url}`
        )
      }
      await stop
    } finally {
      await server.stop()
      chain.close()
    }
  }
}

export default [explorer]
