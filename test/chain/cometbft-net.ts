// Test helper: a local CometBFT testnet whose validators run in this process (our ABCI app each,
// each with its supervised cometbft child). Waits until every validator has made a block.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ChainClient } from '../../chain/client.ts'
import { startCometValidator, type CometValidator } from '../../chain/cometbft/node.ts'
import { writeTestnet, type Testnet } from '../../chain/cometbft/testnet.ts'
import { createTestOnlyQuorumRules } from '../../chain/testing.ts'

export interface LocalNet {
  dir: string
  net: Testnet
  validators: CometValidator[]
  stop(): Promise<void>
}

/** Resolves once `url` reports a block at or above `height` (polls status; the RPC has no push for it). */
export async function waitForHeight(url: string, height: number, timeoutMs = 60_000): Promise<number> {
  const c = new ChainClient({ url, timeoutMs: 2000 })
  const until = Date.now() + timeoutMs
  try {
    for (;;) {
      const h = await c.status().then(
        s => s.height,
        () => -1
      )
      if (h >= height) return h
      if (Date.now() > until) throw new Error(`${url} did not reach height ${height} within ${timeoutMs} ms (at ${h})`)
      await new Promise(resolve => setTimeout(resolve, 100))
    }
  } finally {
    c.close()
  }
}

export async function startLocalNet(n = 4, opts: { chainId?: string } = {}): Promise<LocalNet> {
  const dir = await mkdtemp(join(tmpdir(), 'qcmt-'))
  const net = await writeTestnet({
    dir: join(dir, 'net'),
    validators: n,
    chainId: opts.chainId ?? 'cmt-test',
    timeoutCommitMs: 100
  })
  const validators = await Promise.all(
    net.validators.map(v => startCometValidator({ home: v.home, rules: createTestOnlyQuorumRules() }))
  )
  const stop = async (): Promise<void> => {
    await Promise.all(validators.map(v => v.stop()))
    await rm(dir, { recursive: true, force: true })
  }
  try {
    await Promise.all(net.validators.map(v => waitForHeight(v.rpc, 1)))
  } catch (err) {
    await stop()
    throw err
  }
  return { dir, net, validators, stop }
}
