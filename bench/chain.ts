// Chain benchmarks (issue 3). Targets: committed tx/s (signed, verified, applied, persisted)
// ≥ 5,000 on one core; RPC query round trip ≤ 2 ms p50 on loopback. Reports numbers only.
//   node_modules/.bin/node bench/chain.ts
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createChainApp } from '../chain/app.ts'
import { ChainClient } from '../chain/client.ts'
import { generateChainKey, type ChainKey } from '../chain/keys.ts'
import { BlockProducer } from '../chain/producer.ts'
import { createTestOnlyQuorumRules } from '../chain/testing.ts'
import { buildTx } from '../chain/tx.ts'
import { initChainHome, startEmbeddedValidator } from '../chain/validator.ts'
import { encode } from '../encoding/canonical.ts'
import { loadavg } from 'node:os'
import { decodeTx, verifyTxSignature } from '../chain/tx.ts'

function stats (ms: number[]): { n: number, p50: number, p95: number, p99: number } {
  const s = [...ms].sort((a, b) => a - b)
  const q = (p: number): number => Number(s[Math.min(s.length - 1, Math.floor(p * s.length))].toFixed(3))
  return { n: s.length, p50: q(0.5), p95: q(0.95), p99: q(0.99) }
}

const CID = 'bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy'

async function makeTxs (chainId: string, accounts: number, perAccount: number): Promise<{ txs: Uint8Array[], signMs: number, keys: ChainKey[] }> {
  const keys = await Promise.all(Array.from({ length: accounts }, async () => await generateChainKey()))
  const txs: Uint8Array[] = []
  const t0 = performance.now()
  for (let s = 0; s < perAccount; s++) {
    for (let a = 0; a < accounts; a++) {
      const n = s * accounts + a
      txs.push(buildTx('image.publish', { name: `tenant${a}/app`, digest: 'sha256:' + n.toString(16).padStart(64, '0'), cid: CID, size: n }, keys[a], s, chainId))
    }
  }
  return { txs, signMs: performance.now() - t0, keys }
}

export async function run (opts: { txs?: number, queries?: number, rpc?: boolean } = {}): Promise<Record<string, unknown>> {
  const total = opts.txs ?? 20_000
  const dir = mkdtempSync(join(tmpdir(), 'quorate-bench-chain-'))
  try {
    // 1. state machine + block store on SQLite (WAL, synchronous=FULL), blocks of up to 5,000 txs
    const validator = await generateChainKey()
    const app = createChainApp({ path: join(dir, 'bench.sqlite'), rules: createTestOnlyQuorumRules() })
    app.initChain({ chainId: 'bench', genesisTime: Date.now(), initialHeight: 1, validators: [validator.publicKey], verifiers: [] })
    const producer = new BlockProducer({ app, key: validator, maxBlockTxs: 5000 })
    const accounts = 200
    const { txs, signMs } = await makeTxs('bench', accounts, Math.ceil(total / accounts))
    const cpu0 = process.cpuUsage()
    const t0 = performance.now()
    let checkMs = 0
    let checkCpuUs = 0
    let ok = 0
    let blocks = 0
    for (let i = 0; i < txs.length; i += 5000) {
      const c0 = performance.now()
      const u0 = process.cpuUsage()
      for (const tx of txs.slice(i, i + 5000)) if (producer.submit(tx).result.code !== 0) throw new Error('checkTx refused a bench tx')
      const u1 = process.cpuUsage(u0)
      checkCpuUs += u1.user + u1.system
      checkMs += performance.now() - c0
      while (producer.mempoolSize > 0) {
        const b = producer.produce()
        blocks++
        ok += b.results.filter(r => r.code === 0).length
      }
    }
    const totalMs = performance.now() - t0
    // CPU time of the committed path only (not the verification-ceiling probe below)
    const cpu = process.cpuUsage(cpu0)
    const cpuUs = cpu.user + cpu.system
    // the bare ed25519 verification rate right now, on this machine (the ceiling for one core)
    const dec = txs.slice(0, 3000).map(t => decodeTx(t))
    const v0 = performance.now()
    const vc0 = process.cpuUsage()
    for (const d of dec) verifyTxSignature(d)
    const vc = process.cpuUsage(vc0)
    const verifyPerSec = Math.round(dec.length / (performance.now() - v0) * 1000)
    const verifyCpuUs = (vc.user + vc.system) / dec.length
    if (ok !== txs.length) throw new Error(`only ${ok} of ${txs.length} bench txs succeeded`)
    const committed = {
      txs: txs.length,
      blocks,
      txBytes: txs[0].byteLength,
      committedTxPerSec: Math.round(txs.length / totalMs * 1000),
      // per second of CPU time on one core: what one core does when it is not shared (the machine
      // running the bench is usually busy with other work, which the wall-clock figure includes)
      committedTxPerCpuSec: Math.round(txs.length / cpuUs * 1e6),
      checkTxPerCpuSec: Math.round(txs.length / checkCpuUs * 1e6),
      finalizeCommitTxPerCpuSec: Math.round(txs.length / (cpuUs - checkCpuUs) * 1e6),
      checkTxPerSec: Math.round(txs.length / checkMs * 1000),
      finalizeCommitTxPerSec: Math.round(txs.length / (totalMs - checkMs) * 1000),
      signTxPerSec: Math.round(txs.length / signMs * 1000),
      bareEd25519VerifyPerSec: verifyPerSec,
      // CPU µs per committed tx, and how much of it is not the (unavoidable) signature check
      cpuUsPerTx: Number((cpuUs / txs.length).toFixed(1)),
      verifyCpuUsPerTx: Number(verifyCpuUs.toFixed(1)),
      otherCpuUsPerTx: Number((cpuUs / txs.length - verifyCpuUs).toFixed(1)),
      loadAverage1m: Number(loadavg()[0].toFixed(2)),
      note: 'one process, one JS thread; cpuUsage includes V8 GC helper threads; wall-clock figures include other load on the machine'
    }
    app.close()
    if (opts.rpc === false) return { committed }

    // 2. RPC round trips against the embedded validator on loopback
    const home = join(dir, 'home')
    await initChainHome({ home, chainId: 'bench-rpc' })
    const v = await startEmbeddedValidator({ home, rules: createTestOnlyQuorumRules(), blockIntervalMs: 20 })
    const c = new ChainClient({ url: v.url })
    const key = await generateChainKey()
    const t1 = performance.now()
    const sendN = 50
    for (let i = 0; i < sendN; i++) await c.send(i === 0 ? 'vendor.register' : 'vendor.ekca.publish', (i === 0 ? { name: 'acme' } : { vendor: 'acme', certificate: new Uint8Array([0x30, 2, i & 0xff, i >> 8]) }) as never, key)
    const commitLatencyMs = (performance.now() - t1) / sendN
    const nq = opts.queries ?? 2000
    const data = encode({ name: 'acme' })
    for (let i = 0; i < 200; i++) await c.abciQuery('/vendor', data) // warm up
    const qms: number[] = []
    for (let i = 0; i < nq; i++) { const s = performance.now(); await c.abciQuery('/vendor', data); qms.push(performance.now() - s) }
    const sms: number[] = []
    for (let i = 0; i < nq / 4; i++) { const s = performance.now(); await c.status(); sms.push(performance.now() - s) }
    c.close()
    await v.stop()
    return {
      committed,
      rpc: {
        abciQueryMs: stats(qms),
        statusMs: stats(sms),
        broadcastTxCommitSequentialMs: Number(commitLatencyMs.toFixed(2)),
        note: 'broadcast_tx_commit latency includes the 20 ms block interval'
      },
      targets: { committedTxPerSec: 5000, abciQueryP50Ms: 2 }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  console.log(JSON.stringify(await run(), null, 2))
}
