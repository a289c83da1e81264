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
import { spawn, type ChildProcess } from 'node:child_process'
import { Worker } from 'node:worker_threads'
import { readFileSync } from 'node:fs'
import { writeTestnet } from '../chain/cometbft/testnet.ts'
import { isSeedTx } from '../chain/abci/seed.ts'

const BIN = join(fileURLToPath(new URL('..', import.meta.url)), 'bin', 'quorate')

/** kB of resident memory now and at peak (VmRSS, VmHWM) of a process. */
function memKb(pid: number | undefined): { rss: number; peak: number } {
  if (pid === undefined) return { rss: 0, peak: 0 }
  try {
    const st = readFileSync(`/proc/${pid}/status`, 'utf8')
    const f = (k: string): number => Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(st)?.[1] ?? 0)
    return { rss: f('VmRSS'), peak: f('VmHWM') }
  } catch {
    return { rss: 0, peak: 0 }
  }
}
/** CPU seconds (user + system) a process has used so far (/proc/<pid>/stat, clock ticks of 1/100 s). */
function cpuSec(pid: number | undefined): number {
  if (pid === undefined) return 0
  try {
    const st = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const f = st.slice(st.lastIndexOf(')') + 2).split(' ')
    return (Number(f[11]) + Number(f[12])) / 100
  } catch {
    return 0
  }
}
const childPids = (pid: number | undefined): number[] => {
  if (pid === undefined) return []
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number)
  } catch {
    return []
  }
}

/**
 * Sends `txs` (each account's in sequence order, accounts spread over `urls`) with
 * broadcast_tx_sync, `accounts` senders at once, and waits until all are in blocks; counts the
 * txs of each new block from `urls[0]` (the seed tx excluded). Returns the wall time.
 */
async function pushAndCommit(
  urls: string[],
  txs: Uint8Array[],
  accounts: number,
  mode: 'single' | 'batch' = 'single'
): Promise<{ ms: number; blocks: number; refused: number; senderCpuUs?: number }> {
  const clients = urls.map(url => new ChainClient({ url }))
  const watch = new ChainClient({ url: urls[0] })
  try {
    const h0 = (await watch.status()).height
    const t0 = performance.now()
    let refused = 0
    let senderCpuUs: number | undefined
    let firstRefusal: string | undefined
    // single: one sender per account, one broadcast_tx_sync per POST, on this thread. batch: a
    // worker thread (bench/chain-senders.ts) with BATCH_LANES connections, each owning the
    // accounts ≡ lane (mod lanes), its txs in order in JSON-RPC batches (ChainClient.broadcastTxBatch).
    const senders =
      mode === 'single'
        ? Array.from({ length: accounts }, async (_, a) => {
            const c = clients[a % clients.length]
            for (let i = a; i < txs.length; i += accounts) {
              const r = await c.broadcastTxSync(txs[i])
              if (r.code !== 0) refused++
            }
          })
        : [
            (async () => {
              const w = new Worker(new URL('./chain-senders.ts', import.meta.url), {
                // CometBFT takes 10 requests per batch: as many connections as keep 200 txs in flight
                workerData: { urls, txs, accounts, lanes: urls.length > 1 ? BATCH_LANES_COMETBFT : BATCH_LANES }
              })
              const done = await new Promise<{ refused: number; firstRefusal?: string; cpuUs: number }>(
                (resolve, reject) => {
                  w.once('message', resolve)
                  w.once('error', reject)
                }
              )
              await w.terminate()
              refused += done.refused
              firstRefusal ??= done.firstRefusal
              senderCpuUs = done.cpuUs
            })()
          ]
    let seen = 0
    let h = h0
    let blocks = 0
    // a sender that fails ends the wait (and the bench) instead of leaving it polling
    let failed: unknown
    const sent = Promise.all(senders).catch((err: unknown) => {
      failed = err ?? new Error('a sender failed')
    })
    let lastSeen = 0
    let lastProgress = performance.now()
    let sendersDone = false
    void sent.then(() => {
      sendersDone = true
    })
    while (seen < txs.length - refused) {
      if (failed !== undefined) throw failed
      if (seen !== lastSeen) {
        lastSeen = seen
        lastProgress = performance.now()
      } else if (sendersDone && performance.now() - lastProgress > 20_000)
        throw new Error(
          `${mode}: no tx committed for 20 s after all were sent: ${seen} of ${txs.length} seen in blocks ${h0 + 1}–${h}, ${refused} refused (first: ${firstRefusal})`
        )
      const top = (await watch.status()).height
      for (; h < top; h++) {
        const b = await watch.block(h + 1)
        const n = b.txs.filter(t => !isSeedTx(t)).length
        seen += n
        if (n > 0) blocks++
      }
      if (seen < txs.length - refused) await new Promise(resolve => setTimeout(resolve, 20))
    }
    await sent
    if (failed !== undefined) throw failed
    return { ms: performance.now() - t0, blocks, refused, senderCpuUs }
  } finally {
    for (const c of clients) c.close()
    watch.close()
  }
}

/** Concurrent batch senders (connections) in pushAndCommit's batch mode. */
const BATCH_LANES = 8
/** The same against CometBFT (10 requests per batch by default): 200 txs in flight, as one-tx senders keep. */
const BATCH_LANES_COMETBFT = 20

/** broadcast_tx_commit latency: `n` txs one after another from a fresh account. */
async function commitLatency(url: string, chainId: string, n: number): Promise<ReturnType<typeof stats>> {
  const c = new ChainClient({ url })
  try {
    const k = await generateChainKey()
    const ms: number[] = []
    for (let i = 0; i < n; i++) {
      const tx = buildTx(
        'image.publish',
        { name: 'latency/app', digest: 'sha256:' + i.toString(16).padStart(64, 'f'), cid: CID, size: i },
        k,
        i,
        chainId
      )
      const s = performance.now()
      const r = await c.broadcastTxCommit(tx)
      if (r.txResult.code !== 0 || r.checkTx.code !== 0)
        throw new Error(`latency tx refused: ${r.checkTx.log || r.txResult.log}`)
      ms.push(performance.now() - s)
    }
    return stats(ms)
  } finally {
    c.close()
  }
}

function startValidatorProcess(home: string): Promise<{ proc: ChildProcess; rpc: string }> {
  const proc = spawn(BIN, ['chain', 'start', '--engine', 'cometbft', '--home', home, '--json'], {
    stdio: ['ignore', 'pipe', 'ignore']
  })
  return new Promise((resolve, reject) => {
    let out = ''
    proc.stdout?.on('data', (d: Buffer) => {
      out += d.toString()
      const m = /"rpc":"(http:[^"]+)"/.exec(out)
      if (m !== null) resolve({ proc, rpc: m[1] })
    })
    proc.once('exit', code => reject(new Error(`chain start --engine cometbft exited with ${code}`)))
  })
}

/**
 * The same signed txs through the RPC of (a) the embedded validator and (b) 4 CometBFT
 * validators, each a `quorate chain start --engine cometbft` process with its cometbft child, on
 * this machine; senders spread over the 4 RPCs. Committed tx/s, broadcast_tx_commit p50, memory.
 */
export async function engines(
  opts: { txs?: number; accounts?: number; validators?: number; embedded?: boolean } = {}
): Promise<Record<string, unknown>> {
  const n = opts.txs ?? 6000
  const accounts = opts.accounts ?? 200
  const chainId = 'bench-engines'
  // two sets of the same shape and size, from different accounts: set A goes one tx per POST,
  // set B in JSON-RPC batches, to every engine alike
  const { txs } = await makeTxs(chainId, accounts, Math.ceil(n / accounts))
  const { txs: txsB } = await makeTxs(chainId, accounts, Math.ceil(n / accounts), 1)
  const dir = mkdtempSync(join(tmpdir(), 'quorate-bench-engines-'))
  const out: Record<string, unknown> = { txs: txs.length, accounts, txBytes: txs[0].byteLength }
  try {
    // (a) embedded validator (blocks every 100 ms, the default): one tx per POST with checkTx's
    // signature check on the JS thread (before issue 11's pool) and in the thread pool, then batches
    const embedded = async (
      name: string,
      set: Uint8Array[],
      mode: 'single' | 'batch',
      verifyOffThread: boolean
    ): Promise<Record<string, unknown>> => {
      const home = join(dir, `embedded-${name}`)
      await initChainHome({ home, chainId })
      const v = await startEmbeddedValidator({ home, rules: createTestOnlyQuorumRules(), verifyOffThread })
      try {
        const cpu0 = process.cpuUsage()
        const main0 = process.threadCpuUsage()
        const r = await pushAndCommit([v.url], set, accounts, mode)
        const cpu = process.cpuUsage(cpu0)
        const main = process.threadCpuUsage(main0)
        const lat = await commitLatency(v.url, chainId, 30)
        return {
          committedTxPerSec: Math.round(((set.length - r.refused) / r.ms) * 1000),
          blocks: r.blocks,
          refused: r.refused,
          broadcastTxCommitMs: lat,
          cpuMsPerTx: Number(((cpu.user + cpu.system) / 1000 / set.length).toFixed(3)),
          // the JS thread alone: the RPC server, checkTx but the signature, blocks (and, one tx per
          // POST, the senders, which batches run in a worker); cpuMsPerTx is the whole process
          mainThreadCpuMsPerTx: Number(((main.user + main.system) / 1000 / set.length).toFixed(3)),
          ...(r.senderCpuUs === undefined
            ? {}
            : { sendersCpuMsPerTx: Number((r.senderCpuUs / 1000 / set.length).toFixed(3)) }),
          // what two idle cores would allow the validator (senders elsewhere where they were apart):
          // its JS thread bounds it, and so does all its CPU
          ceilingTxPerSecTwoCores: Math.round(
            Math.min(
              1e6 / ((main.user + main.system) / set.length),
              2e6 / ((cpu.user + cpu.system - (r.senderCpuUs ?? 0)) / set.length)
            )
          ),
          memoryMb: Math.round(memKb(process.pid).rss / 1024)
        }
      } finally {
        await v.stop()
      }
    }
    if (opts.embedded !== false)
      out.embedded = {
        singleVerifyOnMainThread: await embedded('single-main', txs, 'single', false),
        single: await embedded('single', txs, 'single', true),
        batch: await embedded('batch', txsB, 'batch', true),
        note: `CPU and memory: the bench process, which holds the embedded validator (JS thread + libuv's thread pool) and the senders; batch = ${BATCH_LANES} connections sending JSON-RPC batches of 100`
      }

    // (b) CometBFT validators, one process each (+ its cometbft)
    const nv = opts.validators ?? 4
    if (nv === 0) return { ...out, loadAverage1m: Number(loadavg()[0].toFixed(2)) }
    const net = await writeTestnet({ dir: join(dir, 'net'), validators: nv, chainId })
    const procs: ChildProcess[] = []
    try {
      const started = await Promise.all(net.validators.map(async x => await startValidatorProcess(x.home)))
      procs.push(...started.map(x => x.proc))
      const urls = started.map(x => x.rpc)
      for (const u of urls) {
        const c = new ChainClient({ url: u })
        try {
          while ((await c.status().catch(() => ({ height: 0 }))).height < 2)
            await new Promise(resolve => setTimeout(resolve, 100))
        } finally {
          c.close()
        }
      }
      const pids = started.map(x => ({ app: x.proc.pid, cmt: childPids(x.proc.pid) }))
      const cpuNow = (): { app: number; cmt: number } =>
        pids.reduce((a, p) => ({ app: a.app + cpuSec(p.app), cmt: a.cmt + p.cmt.reduce((s, c) => s + cpuSec(c), 0) }), {
          app: 0,
          cmt: 0
        })
      const pass = async (set: Uint8Array[], mode: 'single' | 'batch'): Promise<Record<string, unknown>> => {
        const c0 = cpuNow()
        const b0 = process.cpuUsage()
        const r = await pushAndCommit(urls, set, accounts, mode)
        const c1 = cpuNow()
        const b1 = process.cpuUsage(b0)
        return {
          committedTxPerSec: Math.round(((set.length - r.refused) / r.ms) * 1000),
          blocks: r.blocks,
          refused: r.refused,
          // CPU per committed tx summed over all validators, split by process kind; the bench's
          // own senders apart. 2000 / (apps + cometbft) = the tx/s two unshared cores would sustain.
          cpuMsPerTx: {
            apps: Number((((c1.app - c0.app) * 1000) / set.length).toFixed(3)),
            cometbft: Number((((c1.cmt - c0.cmt) * 1000) / set.length).toFixed(3)),
            senders: Number(((b1.user + b1.system) / 1000 / set.length).toFixed(3))
          },
          ceilingTxPerSecTwoCores: Math.round(2000 / (((c1.app - c0.app + c1.cmt - c0.cmt) * 1000) / set.length))
        }
      }
      const single = await pass(txs, 'single')
      // a failing pass is reported in the output, not hidden behind the other figures
      const batch = await pass(txsB, 'batch').catch((err: unknown) => ({ error: (err as Error).message }))
      const lat = await commitLatency(urls[0], chainId, 30)
      const mem = started.map(x => {
        const app = memKb(x.proc.pid)
        const cmt = childPids(x.proc.pid)
          .map(memKb)
          .reduce((a, b) => ({ rss: a.rss + b.rss, peak: a.peak + b.peak }), { rss: 0, peak: 0 })
        return {
          appMb: Math.round(app.rss / 1024),
          cometbftMb: Math.round(cmt.rss / 1024),
          peakMb: Math.round((app.peak + cmt.peak) / 1024)
        }
      })
      out.cometbft = {
        validators: nv,
        single,
        batch,
        broadcastTxCommitMs: lat,
        memoryPerValidator: mem,
        note: `${nv} validators and their cometbft on this one machine (timeout_commit 150 ms); senders spread over the ${nv} RPCs`
      }
    } finally {
      await Promise.all(
        procs.map(async p => {
          const e = new Promise(resolve => p.once('exit', resolve))
          p.kill('SIGTERM')
          await e
        })
      )
    }
    out.targets = { cometbftCommittedTxPerSec: 1000, embeddedCommittedTxPerSec: 8000 }
    out.loadAverage1m = Number(loadavg()[0].toFixed(2))
    return out
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

function stats(ms: number[]): { n: number; p50: number; p95: number; p99: number } {
  const s = [...ms].sort((a, b) => a - b)
  const q = (p: number): number => Number(s[Math.min(s.length - 1, Math.floor(p * s.length))].toFixed(3))
  return { n: s.length, p50: q(0.5), p95: q(0.95), p99: q(0.99) }
}

const CID = 'bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy'

/**
 * `perAccount` image.publish txs of each of `accounts` new accounts, seq-major. `set` keeps the
 * image names (owned by their first publisher) and digests of two sets on one chain apart.
 */
async function makeTxs(
  chainId: string,
  accounts: number,
  perAccount: number,
  set = 0
): Promise<{ txs: Uint8Array[]; signMs: number; keys: ChainKey[] }> {
  const keys = await Promise.all(Array.from({ length: accounts }, async () => await generateChainKey()))
  const txs: Uint8Array[] = []
  const t0 = performance.now()
  for (let s = 0; s < perAccount; s++) {
    for (let a = 0; a < accounts; a++) {
      const n = s * accounts + a + set * 0x1000000
      txs.push(
        buildTx(
          'image.publish',
          {
            name: set === 0 ? `tenant${a}/app` : `tenant${a}-${set}/app`,
            digest: 'sha256:' + n.toString(16).padStart(64, '0'),
            cid: CID,
            size: n
          },
          keys[a],
          s,
          chainId
        )
      )
    }
  }
  return { txs, signMs: performance.now() - t0, keys }
}

export async function run(
  opts: { txs?: number; queries?: number; rpc?: boolean; engines?: boolean } = {}
): Promise<Record<string, unknown>> {
  const total = opts.txs ?? 20_000
  const dir = mkdtempSync(join(tmpdir(), 'quorate-bench-chain-'))
  try {
    // 1. state machine + block store on SQLite (WAL, synchronous=FULL), blocks of up to 5,000 txs
    const validator = await generateChainKey()
    const app = createChainApp({ path: join(dir, 'bench.sqlite'), rules: createTestOnlyQuorumRules() })
    app.initChain({
      chainId: 'bench',
      genesisTime: Date.now(),
      initialHeight: 1,
      validators: [validator.publicKey],
      verifiers: []
    })
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
      for (const tx of txs.slice(i, i + 5000))
        if (producer.submit(tx).result.code !== 0) throw new Error('checkTx refused a bench tx')
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
    const verifyPerSec = Math.round((dec.length / (performance.now() - v0)) * 1000)
    const verifyCpuUs = (vc.user + vc.system) / dec.length
    if (ok !== txs.length) throw new Error(`only ${ok} of ${txs.length} bench txs succeeded`)
    const committed = {
      txs: txs.length,
      blocks,
      txBytes: txs[0].byteLength,
      committedTxPerSec: Math.round((txs.length / totalMs) * 1000),
      // per second of CPU time on one core: what one core does when it is not shared (the machine
      // running the bench is usually busy with other work, which the wall-clock figure includes)
      committedTxPerCpuSec: Math.round((txs.length / cpuUs) * 1e6),
      checkTxPerCpuSec: Math.round((txs.length / checkCpuUs) * 1e6),
      finalizeCommitTxPerCpuSec: Math.round((txs.length / (cpuUs - checkCpuUs)) * 1e6),
      checkTxPerSec: Math.round((txs.length / checkMs) * 1000),
      finalizeCommitTxPerSec: Math.round((txs.length / (totalMs - checkMs)) * 1000),
      signTxPerSec: Math.round((txs.length / signMs) * 1000),
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
    for (let i = 0; i < sendN; i++)
      await c.send(
        i === 0 ? 'vendor.register' : 'vendor.ekca.publish',
        (i === 0
          ? { name: 'acme' }
          : { vendor: 'acme', certificate: new Uint8Array([0x30, 2, i & 0xff, i >> 8]) }) as never,
        key
      )
    const commitLatencyMs = (performance.now() - t1) / sendN
    const nq = opts.queries ?? 2000
    const data = encode({ name: 'acme' })
    for (let i = 0; i < 200; i++) await c.abciQuery('/vendor', data) // warm up
    const qms: number[] = []
    for (let i = 0; i < nq; i++) {
      const s = performance.now()
      await c.abciQuery('/vendor', data)
      qms.push(performance.now() - s)
    }
    const sms: number[] = []
    for (let i = 0; i < nq / 4; i++) {
      const s = performance.now()
      await c.status()
      sms.push(performance.now() - s)
    }
    c.close()
    await v.stop()
    let enginesResult: Record<string, unknown> | undefined
    if (opts.engines !== false) {
      try {
        enginesResult = await engines()
      } catch (err) {
        enginesResult = { error: (err as Error).message }
      }
    }
    return {
      committed,
      engines: enginesResult,
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
  // `node bench/chain.ts engines` runs only the embedded-vs-CometBFT comparison
  // `node bench/chain.ts embedded` only its embedded part
  const mode = process.argv[2]
  console.log(
    JSON.stringify(
      mode === 'engines'
        ? await engines()
        : mode === 'embedded'
          ? await engines({ validators: 0 })
          : mode === 'cometbft'
            ? await engines({ embedded: false })
            : await run(),
      null,
      2
    )
  )
}
