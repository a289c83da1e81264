// Light client benchmarks (issue 14): a verified state value on loopback — a fresh client (new
// connections, header verified from genesis, proof checked) and a warm one (cached header) —
// against the embedded validator and a 4-validator CometBFT network. Target: the light client's
// part of a client's first verified connection is a few ms (the whole connection ≤ 20 ms p50).
// Reports numbers only.   node_modules/.bin/node bench/light.ts
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ChainClient } from '../chain/client.ts'
import { startCometValidator } from '../chain/cometbft/node.ts'
import { writeTestnet } from '../chain/cometbft/testnet.ts'
import { generateChainKey } from '../chain/keys.ts'
import { LightClient } from '../chain/light/index.ts'
import { createTestOnlyQuorumRules } from '../chain/testing.ts'
import { buildTx } from '../chain/tx.ts'
import { initChainHome, startEmbeddedValidator } from '../chain/validator.ts'

const round = (x: number): number => Math.round(x * 1000) / 1000
function stats(xs: number[]): { n: number; p50Ms: number; p90Ms: number } {
  const s = [...xs].sort((a, b) => a - b)
  const q = (p: number): number => s[Math.min(s.length - 1, Math.floor(p * s.length))]
  return { n: s.length, p50Ms: round(q(0.5)), p90Ms: round(q(0.9)) }
}

/** Waits until `url` has made `blocks` more blocks (so the state is quiet: the newest header commits it). */
async function blocksPass(c: ChainClient, blocks: number): Promise<void> {
  const from = (await c.status()).height
  while ((await c.status()).height < from + blocks) await new Promise(resolve => setTimeout(resolve, 50))
}

async function measure(genesis: Record<string, unknown>, rpcs: string[], n: number): Promise<Record<string, unknown>> {
  const fresh: number[] = []
  for (let i = 0; i < n; i++) {
    const t0 = performance.now()
    const lc = LightClient.create({ genesis, rpcs })
    const v = await lc.get('vendor/acme')
    fresh.push(performance.now() - t0)
    lc.close()
    if (!('value' in v)) throw new Error('vendor/acme not found')
  }
  const lc = LightClient.create({ genesis, rpcs })
  await lc.get('vendor/acme')
  const warm: number[] = []
  const header: number[] = []
  for (let i = 0; i < n; i++) {
    let t0 = performance.now()
    await lc.get('vendor/acme')
    warm.push(performance.now() - t0)
    t0 = performance.now()
    await lc.verifiedHeader()
    header.push(performance.now() - t0)
  }
  lc.close()
  return { freshClientGet: stats(fresh), warmGet: stats(warm), verifiedHeader: stats(header) }
}

async function embedded(n: number): Promise<Record<string, unknown>> {
  const home = await mkdtemp(join(tmpdir(), 'qbench-light-'))
  await initChainHome({ home, chainId: 'bench-light' })
  const v = await startEmbeddedValidator({ home, rules: createTestOnlyQuorumRules(), blockIntervalMs: 0 })
  const c = new ChainClient({ url: v.url })
  try {
    await c.broadcastTxCommit(buildTx('vendor.register', { name: 'acme' }, await generateChainKey(), 0, 'bench-light'))
    await blocksPass(c, 2)
    const genesis = JSON.parse(await readFile(join(home, 'config', 'genesis.json'), 'utf8')) as Record<string, unknown>
    return await measure(genesis, [v.url], n)
  } finally {
    c.close()
    await v.stop()
    await rm(home, { recursive: true, force: true })
  }
}

async function cometbft(n: number): Promise<Record<string, unknown>> {
  const dir = await mkdtemp(join(tmpdir(), 'qbench-light-cmt-'))
  const net = await writeTestnet({ dir, validators: 4, chainId: 'bench-light-cmt', timeoutCommitMs: 100 })
  const vals = await Promise.all(
    net.validators.map(x => startCometValidator({ home: x.home, rules: createTestOnlyQuorumRules() }))
  )
  const c = new ChainClient({ url: net.validators[0].rpc })
  try {
    for (;;) {
      const ok = await c.status().then(
        s => s.height >= 1,
        () => false
      )
      if (ok) break
      await new Promise(resolve => setTimeout(resolve, 100))
    }
    await c.broadcastTxCommit(
      buildTx('vendor.register', { name: 'acme' }, await generateChainKey(), 0, 'bench-light-cmt')
    )
    await blocksPass(c, 2)
    const genesis = JSON.parse(
      await readFile(join(net.validators[0].home, 'config', 'genesis.json'), 'utf8')
    ) as Record<string, unknown>
    return await measure(
      genesis,
      net.validators.map(x => x.rpc),
      n
    )
  } finally {
    c.close()
    await Promise.all(vals.map(x => x.stop()))
    await rm(dir, { recursive: true, force: true })
  }
}

export async function run(): Promise<Record<string, unknown>> {
  return {
    target: 'light client part of the first verified connection: a few ms p50 (whole connection ≤ 20 ms p50)',
    note: 'freshClientGet = new client, new connections, newest header verified from genesis, proof checked; on a quiet chain (the newest header commits the state) — after a state change a client waits for the next block',
    embedded: await embedded(40),
    cometbft4: await cometbft(20)
  }
}

if (import.meta.url === `file://${process.argv[1]}`) process.stdout.write(`${JSON.stringify(await run(), null, 2)}\n`)
