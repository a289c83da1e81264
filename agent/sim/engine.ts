// The simulation engine: the product's chain state machine (createChainApp, its finalizeBlock
// and commit once per simulated block, block time advancing), the product's committee draw
// (selectCommittee over the chain's own seed and candidate snapshot) and the product's verdict
// signatures and QC checks (the chain verifies every QC it is given with the injected quorum
// rules). Synthetic are only the TPM evidence (a node has good or bad firmware; an honest member's
// appraisal says which) and the network (every message arrives; silence is a strategy).
//
// Per block: assemble the queued transactions (signed when the block is built, so sequence
// numbers follow what the chain accepted) → finalizeBlock → commit → hand each node its result →
// run the events due at this height (a seed is ready, a re-attestation is due, a wait is over).
//
// The adversary: colluding verifiers (a fraction F of the pool) and nodes with bad firmware.
//   collude — colluders pass bad nodes and fail honest ones; a bad node attests on the normal
//             schedule.
//   silent  — colluders never answer.
//   retry   — a bad node retries as fast as the chain allows: it reads the seed, counts its
//             colluders on the committee and only goes on (one quote, colluders pass it) when they
//             reach the threshold; otherwise it drops the round and asks again. Colluders are
//             honest in other nodes' rounds (they stay unnoticed).
//   all     — retry and collude together.
import { selectCommittee } from '../../attestation/quorum/committee.ts'
import { createChainApp, type ChainApp } from '../../chain/app.ts'
import { buildTx } from '../../chain/tx.ts'
import {
  DEFAULT_CERTIFICATION,
  type AttestRequestRecord,
  type Genesis,
  type TxBodies,
  type TxResult,
  type TxType
} from '../../chain/types.ts'
import { sha256, utf8 } from '../../encoding/bytes.ts'
import { decode, encode } from '../../encoding/canonical.ts'
import { InvalidInputError, QuorateError } from '../../encoding/errors.ts'
import {
  blockedProbability,
  forgeProbability,
  fractionValue,
  securityBitsAt,
  thresholdOf,
  type Fraction
} from './analytic.ts'
import { makePopulation, Rng, type SimNode } from './population.ts'
import type { RuleSet } from './rules.ts'

export type Strategy = 'collude' | 'silent' | 'retry' | 'all'
export const STRATEGIES: readonly Strategy[] = ['collude', 'silent', 'retry', 'all']

export interface SimOptions {
  /** Verifier pool (genesis verifiers). */
  readonly nodes: number
  /** Fraction of the pool that colludes. */
  readonly byzantine: Fraction
  readonly strategy: Strategy
  /** Simulated hours after setup. */
  readonly hours: number
  readonly rules: RuleSet
  readonly seed: string
  /** Nodes with bad firmware (default 1). */
  readonly bad?: number
  /**
   * Honest verifiers that re-attest during the run (default all of them, at most 1,000: each
   * request costs the chain a pass over every candidate, so 10,000 re-attesting nodes take an
   * hour of CPU here; committees are still drawn from the whole pool).
   */
  readonly attesters?: number
  /** Certification lifetime; a node re-attests shortly before it ends (default: the chain's genesis default, 24 h). */
  readonly ttlMs?: number
  /** Block interval (default 1 s). */
  readonly blockMs?: number
  /** Blocks an honest node (today's agent) waits before asking again after a round without a pass (default 30). */
  readonly retryBlocks?: number
  /** SQLite file for the chain state (default in memory). */
  readonly dbPath?: string
  readonly onProgress?: (msg: string) => void
  readonly signal?: AbortSignal
}

export interface SimResult {
  nodes: number
  byzantineFraction: number
  committeeSize: number
  securityBits: number
  rounds: number
  forged: number
  honestBlockedRate: number
  adversary: { roundsAttempted: number; certified: number; blocksWaited: number }
  recordBytes: { mean: number; max: number }
  chainBytesPerHour: number
  verifierWork: { appraisalsPerNodePerHour: { mean: number; max: number } }
  tpmOpsPerRound: { quotes: number; activations: number }
  analytic: { forgePerRound: number; blockedPerRound: number }
}

/** Figures the JSON object leaves out, for the human output and the docs. */
export interface SimDetail {
  rules: string
  strategy: Strategy
  hours: number
  blocks: number
  attesters: number
  badNodes: number
  colluders: number
  honestRounds: number
  honestPassed: number
  memberRecords: number
  refusedRequests: number
  firstForgeAfterRounds?: number
  firstRoundActivations: number
  /** Verifiers the chain removed from the candidates by the end (silence counting, fault proofs). */
  dropped: { colluders: number; honest: number }
  missing: readonly string[]
  wallSeconds: { setup: number; run: number }
}

export class SimAbortedError extends QuorateError {
  override readonly code: string = 'ERR_SIM_ABORTED'
}

const GENESIS_TIME = Date.UTC(2026, 0, 1)
export const DEFAULT_ATTESTERS = 1000
const CHAIN_ID = 'quorate-sim'
const REGISTER_PER_BLOCK = 500
const T = { pass: 0, fail: 1, silent: 2 } as const
type Vote = (typeof T)[keyof typeof T]

interface Node {
  readonly n: SimNode
  /** Last round the chain accepted for this node. */
  round: number
  open?: { round: number; requestHeight: number }
  certifiedOnce: boolean
  /** Legacy: members that already checked this node's AK–EK binding (each member caches its own). */
  readonly boundBy: Set<number>
}

interface Queued {
  node: Node | SimNode
  build: (seq: number) => Uint8Array
  done: (r: TxResult, h: number, tx: Uint8Array) => void
}

/** The height a refused attest.request names as the earliest it is allowed ("… allowed at height N"). */
export function allowedHeight(log: string): number | undefined {
  const m = /allowed at height (\d+)/.exec(log)
  const v = m === null ? undefined : Number(m[1])
  return v !== undefined && Number.isSafeInteger(v) ? v : undefined
}

export async function runSimulation(o: SimOptions): Promise<{ result: SimResult; detail: SimDetail }> {
  const t0 = performance.now()
  const blockMs = o.blockMs ?? 1000
  const ttlMs = o.ttlMs ?? DEFAULT_CERTIFICATION.certTtlMs
  const retryBlocks = o.retryBlocks ?? 30
  const bad = o.bad ?? 1
  const F = fractionValue(o.byzantine)
  const honestCount = o.nodes - Math.round(F * o.nodes)
  const attesters = Math.min(o.attesters ?? DEFAULT_ATTESTERS, honestCount)
  if (!Number.isSafeInteger(o.nodes) || o.nodes < 4)
    throw new InvalidInputError('a simulation needs at least 4 verifier nodes (3f + 1 with f ≥ 1)')
  if (!(o.hours > 0)) throw new InvalidInputError('hours must be positive')
  const progress = o.onProgress ?? (() => {})
  const rules = o.rules

  progress(
    `sim: ${o.nodes} verifiers (${Math.round(F * o.nodes)} colluding), ${bad} bad node(s), ${attesters} honest attesters; keys…`
  )
  const pop = makePopulation({
    seed: o.seed,
    verifiers: o.nodes,
    colluderFraction: F,
    bad,
    attesters,
    bls: rules.qcVersion === 3,
    onProgress: (d, t) => {
      if (d % 5000 === 0) progress(`sim: keys ${d}/${t}`)
    }
  })
  const rng = new Rng(o.seed, 'schedule')
  const state = new Map<string, Node>()
  for (const n of pop.nodes)
    if (n.attester) state.set(n.nodeId, { n, round: 0, certifiedOnce: false, boundBy: new Set() })

  const validator = sha256(utf8.encode(`quorate/sim/validator\0${o.seed}`))
  const base: Genesis = {
    chainId: CHAIN_ID,
    genesisTime: GENESIS_TIME,
    initialHeight: 1,
    validators: [validator],
    verifiers: pop.verifiers.map(v => v.nodeId).sort()
  }
  const app: ChainApp = createChainApp({ rules: rules.quorumRules(), path: o.dbPath })
  // a simulation needs no durability: one fsync per block would cost more than the block
  app.db.exec('PRAGMA synchronous = OFF')
  app.initChain(rules.genesis(base, ttlMs))

  // ---- the block loop's queues ----
  const txq = new Map<number, Queued[]>()
  const events = new Map<number, Array<() => void>>()
  const submit = (h: number, q: Queued): void => {
    let l = txq.get(h)
    if (l === undefined) txq.set(h, (l = []))
    l.push(q)
  }
  const at = (h: number, fn: () => void): void => {
    let l = events.get(h)
    if (l === undefined) events.set(h, (l = []))
    l.push(fn)
  }
  const simNode = (x: Node | SimNode): SimNode => ('n' in x ? x.n : x)
  const tx =
    <K extends TxType>(type: K, body: TxBodies[K], signer: SimNode) =>
    (seq: number) =>
      buildTx(type, body, signer.key, seq, CHAIN_ID)

  // ---- statistics ----
  const s = {
    rounds: 0,
    forged: 0,
    honestRounds: 0,
    honestBlocked: 0,
    honestPassed: 0,
    advRounds: 0,
    advWaited: 0,
    advCertified: new Set<string>(),
    recordBytes: [] as number[],
    chainBytes: 0,
    memberRecords: 0,
    refused: 0,
    quotesAfter: 0,
    activationsAfter: 0,
    roundsAfter: 0,
    firstRoundActivations: 0,
    firstForgeAfter: undefined as number | undefined,
    bindingMissing: false,
    committeeSize: 0
  }
  const appraisals = new Uint32Array(pop.nodes.length)
  let counting = false
  /** Last simulated height (set once setup is done). */
  let endHeight = Number.MAX_SAFE_INTEGER

  let height = 0
  let time = GENESIS_TIME
  let lastHash = sha256(utf8.encode(`quorate/sim/genesis\0${o.seed}`))
  const hBe = new Uint8Array(8)

  function produce(h: number): void {
    const items = txq.get(h) ?? []
    txq.delete(h)
    const txs = items.map(q => {
      const sn = simNode(q.node)
      return q.build(sn.seq++)
    })
    time += blockMs
    new DataView(hBe.buffer).setBigUint64(0, BigInt(h))
    const hash = sha256(lastHash, hBe, ...txs.map(t => sha256(t)))
    const res = app.finalizeBlock({ height: h, time, hash, txs })
    app.commit()
    lastHash = hash
    height = h
    if (counting) for (const t of txs) s.chainBytes += t.byteLength
    items.forEach((q, i) => {
      const r = res.txResults[i]
      if (r.code !== 0) {
        // a refused tx does not use its sequence number: ask the chain what the next one is
        const sn = simNode(q.node)
        const a = app.query({ path: '/account', data: encode({ signer: sn.key.publicKey }) })
        sn.seq = a.value === undefined ? sn.seq : (decode(a.value) as { seq: number }).seq
      }
      q.done(r, h, txs[i])
    })
    // an event may schedule another at this same height (a dropped round asks again at once)
    for (let ev = events.get(h); ev !== undefined; ev = events.get(h)) {
      events.delete(h)
      for (const fn of ev) fn()
    }
  }

  // ---- a node's rounds ----
  function request(st: Node, h: number): void {
    submit(h, {
      node: st,
      build: tx('attest.request', { nodeId: st.n.nodeId, round: st.round + 1 }, st.n),
      done: (r, hh) => {
        if (r.code === 0) {
          st.round++
          st.open = { round: st.round, requestHeight: hh }
          s.rounds++
          if (st.n.role === 'bad') s.advRounds++
          at(hh + 1, () => {
            seeded(st, hh + 1)
          })
          return
        }
        s.refused++
        const allowed = allowedHeight(r.log) ?? hh + (rules.deadlineBlocks ?? retryBlocks)
        const next = Math.max(allowed, hh + 1)
        if (st.n.role === 'bad') s.advWaited += Math.min(next, endHeight + 1) - hh
        at(next - 1, () => {
          request(st, next)
        })
      }
    })
  }

  function vote(member: SimNode, subject: SimNode): Vote {
    const good = subject.role !== 'bad'
    if (member.role !== 'colluder' && member.role !== 'bad') return good ? T.pass : T.fail
    switch (o.strategy) {
      case 'silent':
        return T.silent
      case 'collude':
      case 'all':
        return good ? T.fail : T.pass
      case 'retry':
        return T.pass
    }
  }

  function readRequest(nodeId: string): AttestRequestRecord {
    const q = app.query({ path: '/key', data: utf8.encode(`req/${nodeId}`) })
    if (q.value === undefined) throw new QuorateError(`sim: no request record for ${nodeId}: ${q.log}`)
    return decode(q.value, { maxBytes: 1 << 28, maxItems: 1 << 20 }) as unknown as AttestRequestRecord
  }

  function akBoundOnChain(nodeId: string): boolean {
    const q = app.query({ path: '/key', data: utf8.encode(`node/${nodeId}`) })
    return (
      q.value !== undefined && (decode(q.value, { maxBytes: 1 << 24 }) as { akBound?: unknown }).akBound !== undefined
    )
  }

  function seeded(st: Node, h: number): void {
    const open = st.open
    if (open === undefined) return
    const req = readRequest(st.n.nodeId)
    if (
      req.round !== open.round ||
      req.seed === undefined ||
      (req.candidates === undefined && req.committee === undefined)
    )
      throw new QuorateError(
        `sim: round ${open.round} of ${st.n.nodeId} has no seed at height ${h} (request record: round ${req.round}, height ${req.height}, seed ${req.seed === undefined ? 'missing' : 'set'}, closed ${String(req.closedAt)})`
      )
    // the current rules fix k with the seed (min(k, candidates)); legacy draws the genesis size
    // (a chain that keeps the drawn committee in the request saves the draw; it is the same draw)
    const committee = req.committee ?? selectCommittee(req.seed, req.candidates ?? [], req.k ?? rules.k)
    s.committeeSize = Math.max(s.committeeSize, committee.length)
    const need = thresholdOf(committee.length)
    const members = committee.map(id => {
      const m = pop.byId.get(id)
      if (m === undefined) throw new QuorateError(`sim: committee member ${id} is not a simulated node`)
      return m
    })
    const votes = members.map(m => vote(m, st.n))
    const isBad = st.n.role === 'bad'
    const passers = members.filter((_, i) => votes[i] === T.pass)
    const failers = members.filter((_, i) => votes[i] === T.fail)
    const retrying = isBad && (o.strategy === 'retry' || o.strategy === 'all')
    // the retrying adversary knows its colluders: a round they cannot carry costs it nothing
    const engaged = !retrying || passers.length >= need
    if (engaged) {
      if (counting) for (let i = 0; i < members.length; i++) if (votes[i] !== T.silent) appraisals[members[i].index]++
      // members check the AK–EK binding (MakeCredential → the node's ActivateCredential) unless
      // they know it: legacy, each member remembers its own checks; current, the chain records it
      const onChain = rules.bindingOnChain && akBoundOnChain(st.n.nodeId)
      if (rules.bindingOnChain && st.certifiedOnce && !onChain) s.bindingMissing = true
      let activations = 0
      for (let i = 0; i < members.length; i++) {
        if (votes[i] === T.silent) continue
        if (rules.bindingOnChain ? !onChain : !st.boundBy.has(members[i].index)) activations++
        if (!rules.bindingOnChain) st.boundBy.add(members[i].index)
      }
      if (st.certifiedOnce) {
        s.roundsAfter++
        s.quotesAfter++
        s.activationsAfter += activations
      } else if (s.firstRoundActivations === 0) s.firstRoundActivations = activations
    }
    if (!isBad) s.honestRounds++
    const outcome = passers.length >= need ? 'pass' : failers.length >= need ? 'fail' : undefined
    if (!isBad && outcome !== 'pass') s.honestBlocked++

    const evidenceDigest = sha256(
      utf8.encode(`quorate/sim/evidence\0${st.n.nodeId}\0${open.round}\0${isBad ? 'bad' : 'good'}`)
    )
    // every verdict of the deciding side goes in, as the agent's collector does: a member left out
    // of a QC counts as silent on chain (and a verifier silent in most of its rounds is dropped)
    const qcFor = (side: 'pass' | 'fail'): Uint8Array =>
      rules.buildQc({
        chainId: CHAIN_ID,
        nodeId: st.n.nodeId,
        round: open.round,
        outcome: side,
        signers: side === 'pass' ? passers : failers,
        committee,
        evidenceDigest,
        failedClaims: side === 'pass' ? [] : ['firmware'],
        now: time,
        ttlMs
      })

    if (!engaged) {
      again(st, h + 1)
      return
    }
    if (outcome === 'pass') {
      record(st, st.n, qcFor('pass'), h + 1)
      return
    }
    if (outcome === 'fail' && (rules.membersRecord || !isBad)) {
      // today's honest agent records whatever its round settled; under the current rules a
      // member records a failing round the node would rather hide
      record(st, rules.membersRecord ? failers[0] : st.n, qcFor('fail'), h + 1)
      return
    }
    // no quorum (or a failure the node hides): nothing is recorded by anyone
    closeUnrecorded(st, h)
  }

  function closeUnrecorded(st: Node, h: number): void {
    const open = st.open
    if (open === undefined) return
    if (rules.deadlineBlocks !== undefined) {
      // the chain closes the round at its deadline; the node asks again once it may
      at(open.requestHeight + rules.deadlineBlocks, () => {
        st.open = undefined
        again(st, open.requestHeight + rules.deadlineBlocks! + 1)
      })
    } else {
      st.open = undefined
      again(st, st.n.role === 'bad' && (o.strategy === 'retry' || o.strategy === 'all') ? h + 1 : h + retryBlocks)
    }
  }

  function again(st: Node, h: number): void {
    at(h - 1, () => {
      request(st, h)
    })
  }

  function record(st: Node, by: SimNode, qc: Uint8Array, h: number): void {
    const open = st.open
    if (open === undefined) return
    submit(h, {
      node: by === st.n ? st : by,
      build: tx('attest.record', { nodeId: st.n.nodeId, round: open.round, qc }, by),
      done: (r, hh, bytes) => {
        st.open = undefined
        if (r.code !== 0) {
          progress(`sim: attest.record of ${st.n.nodeId} round ${open.round} refused: ${r.log}`)
          again(st, hh + retryBlocks)
          return
        }
        if (counting) s.recordBytes.push(bytes.byteLength)
        if (by !== st.n) s.memberRecords++
        const out = decode(r.data ?? new Uint8Array([0xa0])) as { outcome?: string; expiresAt?: number }
        if (out.outcome === 'pass') {
          st.certifiedOnce = true
          if (st.n.role === 'bad') {
            s.forged++
            s.advCertified.add(st.n.nodeId)
            if (s.firstForgeAfter === undefined) s.firstForgeAfter = s.advRounds
          } else s.honestPassed++
          // re-attest a little before the certification ends (10 % of its lifetime early)
          const until = (out.expiresAt ?? time + ttlMs) - Math.floor(ttlMs / 10)
          again(st, hh + Math.max(1, Math.ceil((until - time) / blockMs)))
        } else {
          again(st, hh + (rules.deadlineBlocks === undefined ? retryBlocks : 1))
        }
      }
    })
  }

  // ---- setup: register every node that will attest ----
  // with BLS verdicts only registered keys can sign, so every verifier registers too
  const registering = pop.nodes.filter(n => n.attester || rules.qcVersion === 3)
  let h = 1
  for (let i = 0; i < registering.length; i += REGISTER_PER_BLOCK) {
    for (const n of registering.slice(i, i + REGISTER_PER_BLOCK)) {
      const body: TxBodies['node.register'] = {
        nodeId: n.nodeId,
        ekCertificate: placeholderCert(n.index),
        akPublic: sha256(utf8.encode(`ak\0${n.nodeId}`)),
        addrs: ['/ip4/127.0.0.1/tcp/4001'],
        ...rules.registerExtra(n)
      }
      submit(h, {
        node: n,
        build: tx('node.register', body, n),
        done: r => {
          if (r.code !== 0) throw new QuorateError(`sim: node.register refused: ${r.log}`)
        }
      })
    }
    produce(h++)
  }
  const setupBlocks = h - 1
  const runBlocks = Math.ceil((o.hours * 3600_000) / blockMs)
  endHeight = h + runBlocks - 1
  const ttlBlocks = Math.max(1, Math.floor(ttlMs / blockMs))
  // first requests spread over one certification lifetime, as a running network's would be
  for (const st of state.values()) again(st, h + 1 + (st.n.role === 'bad' ? 0 : rng.int(ttlBlocks)))
  const t1 = performance.now()
  progress(
    `sim: setup ${((t1 - t0) / 1000).toFixed(1)} s (${setupBlocks} blocks); running ${o.hours} h = ${runBlocks} blocks, rules ${rules.name}, k = ${rules.k}, strategy ${o.strategy}`
  )

  counting = true
  const last = endHeight
  let lastReport = performance.now()
  for (; h <= last; h++) {
    produce(h)
    if ((h & 1023) === 0) {
      if (o.signal?.aborted === true) {
        app.close()
        throw new SimAbortedError('simulation aborted')
      }
      const now = performance.now()
      if (now - lastReport > 5000) {
        lastReport = now
        progress(
          `sim: ${(((h - setupBlocks) * blockMs) / 3600_000).toFixed(2)}/${o.hours} h, ${s.rounds} rounds, forged ${s.forged}, honest blocked ${s.honestBlocked}/${s.honestRounds}, ${((now - t1) / 1000).toFixed(0)} s`
        )
        await new Promise(resolve => setImmediate(resolve))
      }
    }
  }
  const t2 = performance.now()
  // verifiers the chain dropped from the candidates (silence, fault proofs) by the end of the run
  const dropped = { colluders: 0, honest: 0 }
  for (const v of pop.verifiers) {
    if (app.query({ path: '/key', data: utf8.encode(`faulty/${v.nodeId}`) }).value === undefined) continue
    if (v.role === 'colluder') dropped.colluders++
    else dropped.honest++
  }
  app.close()

  const k = s.committeeSize === 0 ? rules.k : s.committeeSize
  const verifierCounts = pop.verifiers.map(v => appraisals[v.index])
  const mean = (a: readonly number[]): number => (a.length === 0 ? 0 : a.reduce((x, y) => x + y, 0) / a.length)
  const max = (a: readonly number[]): number => a.reduce((x, y) => Math.max(x, y), 0)
  const round3 = (x: number): number => Math.round(x * 1000) / 1000
  const result: SimResult = {
    nodes: o.nodes,
    byzantineFraction: F,
    committeeSize: k,
    securityBits: securityBitsAt(k, o.byzantine),
    rounds: s.rounds,
    forged: s.forged,
    honestBlockedRate: s.honestRounds === 0 ? 0 : round3(s.honestBlocked / s.honestRounds),
    adversary: { roundsAttempted: s.advRounds, certified: s.advCertified.size, blocksWaited: s.advWaited },
    recordBytes: { mean: Math.round(mean(s.recordBytes)), max: max(s.recordBytes) },
    chainBytesPerHour: Math.round(s.chainBytes / o.hours),
    verifierWork: {
      appraisalsPerNodePerHour: {
        mean: round3(mean(verifierCounts) / o.hours),
        max: round3(max(verifierCounts) / o.hours)
      }
    },
    tpmOpsPerRound: {
      quotes: s.roundsAfter === 0 ? 0 : round3(s.quotesAfter / s.roundsAfter),
      activations: s.roundsAfter === 0 ? 0 : round3(s.activationsAfter / s.roundsAfter)
    },
    analytic: { forgePerRound: forgeProbability(k, o.byzantine), blockedPerRound: blockedProbability(k, o.byzantine) }
  }
  const detail: SimDetail = {
    rules: rules.name,
    strategy: o.strategy,
    hours: o.hours,
    blocks: runBlocks,
    attesters,
    badNodes: bad,
    colluders: pop.colluders,
    honestRounds: s.honestRounds,
    honestPassed: s.honestPassed,
    memberRecords: s.memberRecords,
    refusedRequests: s.refused,
    firstForgeAfterRounds: s.firstForgeAfter,
    firstRoundActivations: s.firstRoundActivations,
    dropped,
    missing: [
      ...rules.missing,
      ...(s.bindingMissing
        ? [
            'AK–EK binding on chain: this build records none after a pass, so every round activates the credential again'
          ]
        : [])
    ],
    wallSeconds: { setup: round3((t1 - t0) / 1000), run: round3((t2 - t1) / 1000) }
  }
  return { result, detail }
}

/** A DER-shaped placeholder: the chain checks only the outer SEQUENCE; appraisal is synthetic. */
function placeholderCert(i: number): Uint8Array {
  const b = new Uint8Array(2 + 64)
  b[0] = 0x30
  b[1] = 64
  const d = sha256(utf8.encode(`quorate/sim/ek\0${i}`))
  b.set(d, 2)
  b.set(d, 34)
  return b
}
