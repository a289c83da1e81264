// Worker thread of bench/chain.ts: sends txs as JSON-RPC batches (ChainClient.broadcastTxBatch),
// `lanes` connections at once, each lane owning the accounts ≡ lane (mod lanes) so that every
// account's txs go in order over one connection. Run in a worker so the bench's JS thread holds
// only the embedded validator and its CPU can be measured alone.
import { parentPort, workerData } from 'node:worker_threads'
import { ChainClient } from '../chain/client.ts'

const { urls, txs, accounts, lanes } = workerData as {
  urls: string[]
  txs: Uint8Array[]
  accounts: number
  lanes: number
}
let refused = 0
let firstRefusal: string | undefined
const t0 = process.threadCpuUsage()
await Promise.all(
  Array.from({ length: lanes }, async (_, lane) => {
    const c = new ChainClient({ url: urls[lane % urls.length] })
    try {
      const mine = txs.filter((_, i) => (i % accounts) % lanes === lane)
      for (const r of await c.broadcastTxBatch(mine))
        if (r instanceof Error || r.code !== 0) {
          refused++
          firstRefusal ??= r instanceof Error ? r.message : `code ${r.code}: ${r.log}`
        }
    } finally {
      c.close()
    }
  })
)
const cpu = process.threadCpuUsage(t0)
parentPort?.postMessage({ refused, firstRefusal, cpuUs: cpu.user + cpu.system })
