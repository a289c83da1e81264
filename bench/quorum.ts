// Quorum benchmarks.
//  0. bls: @chainsafe/blst (chosen) against @noble/curves — keygen, sign, verify, aggregate verify
//     at 33 signers of 48 (the threshold of the default committee). qcV3: chain-side QC v3
//     verification at k = 48 among 1,000 candidates (target ≤ 5 ms p50) and the attest.record
//     transaction it rides in (target ≤ 1 KB).
//  1. loopback: time to certify one node with k = 7 and 48 committee members — real libp2p hosts
//     on 127.0.0.1, a real swtpm for the node (one quote per round), real MakeCredential (first
//     round only: bindings are cached), real quote + EK chain checks by every member, in-memory
//     chain port (QC checked by the real QuorumRules).
//  1b. loopbackMembersInWorkers: the same k = 48 round with the members in 2 worker threads (their
//     own libp2p hosts, appraisers, BLS keys; chain reads over a MessagePort): the node thread's
//     CPU per round and a member's CPU per session, i.e. what a node spends and waits for when its
//     members run on other machines. The members still share this machine's 2 cores, so its wall
//     time is an upper bound of a deployment's.
//  2. simulation of 1,000 nodes, each certified once: real committee draws, real BLS verdict
//     signing, the node's collector (deferred aggregate check), real QC v3 verification by the
//     chain; transport and appraisal simulated. Reports work per node vs k and attest.record bytes.
// Run alone: node_modules/.bin/node bench/quorum.ts
import { performance } from 'node:perf_hooks'
import { isMainThread, workerData } from 'node:worker_threads'
import { countingTpm } from '../test/helpers/counting-tpm.ts'
import { sha256, utf8 } from '../encoding/bytes.ts'
import { encode } from '../encoding/canonical.ts'
import { buildTx } from '../chain/tx.ts'
import {
  ed25519Signer,
  threshold,
  type VerdictSigner,
  blsKeyFromSeed,
  drawCommittee,
  signMemberVerdict,
  CertificateCollector,
  verifyCertificate,
  verifyMemberVerdict,
  encodeMemberVerdict,
  committeeSizeFor,
  DEFAULT_ADVERSARY_MODEL,
  type BlsSigner
} from '../attestation/quorum/index.ts'

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b)
  return s.length === 0 ? NaN : s[Math.min(s.length - 1, Math.floor(p * s.length))]
}
const r2 = (x: number): number => Math.round(x * 100) / 100

/** p50 and p90 of `n` timed calls (ms), after `warm` untimed ones. */
function timeIt(n: number, f: () => unknown, warm = 3): { p50: number; p90: number } {
  for (let i = 0; i < warm; i++) f()
  const xs: number[] = []
  for (let i = 0; i < n; i++) {
    const t0 = performance.now()
    f()
    xs.push(performance.now() - t0)
  }
  return { p50: Math.round(pct(xs, 0.5) * 1000) / 1000, p90: Math.round(pct(xs, 0.9) * 1000) / 1000 }
}

/** The two BLS12-381 libraries side by side, same ciphersuite and message, 33 signers of 48. */
export async function blsComparison(): Promise<Record<string, unknown>> {
  const blst = await import('@chainsafe/blst')
  const { bls12_381: noble } = await import('@noble/curves/bls12-381.js')
  const msg = sha256(utf8.encode('bench verdict message'))
  const DST = 'BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_'
  const seeds = Array.from({ length: 48 }, (_, i) => sha256(utf8.encode(`bls bench ${i}`)))
  // blst
  const sks = seeds.map(s => blst.SecretKey.fromKeygen(s))
  const pks = sks.map(k => k.toPublicKey().toBytes(true))
  const sigs = sks.slice(0, 33).map(k => k.sign(msg).toBytes(true))
  const agg = blst.aggregateSerializedSignatures(sigs, true).toBytes(true)
  const pkObjs = pks.slice(0, 33).map(b => blst.PublicKey.fromBytes(b, true))
  const b = {
    keygenMs: timeIt(100, () => blst.SecretKey.fromKeygen(seeds[0]).toPublicKey().toBytes(true)),
    signMs: timeIt(100, () => sks[0].sign(msg).toBytes(true)),
    verifyMs: timeIt(100, () =>
      blst.verify(msg, blst.PublicKey.fromBytes(pks[0], true), blst.Signature.fromBytes(sigs[0], true))
    ),
    aggregateVerify33Ms: timeIt(100, () =>
      blst.fastAggregateVerify(msg, pkObjs, blst.Signature.fromBytes(agg, true, true))
    ),
    aggregateVerify33ColdKeysMs: timeIt(100, () =>
      blst.fastAggregateVerify(
        msg,
        pks.slice(0, 33).map(x => blst.PublicKey.fromBytes(x, true)),
        blst.Signature.fromBytes(agg, true, true)
      )
    )
  }
  // noble (pure JS)
  const L = noble.longSignatures
  const nsk = seeds.map(s => L.keygen(new Uint8Array([...s, ...s.subarray(0, 16)])))
  const npk = nsk.map(k => k.publicKey.toBytes(true))
  const nagg = L.aggregateSignatures(nsk.slice(0, 33).map(k => L.sign(L.hash(msg, DST), k.secretKey))).toBytes(true)
  const n = {
    keygenMs: timeIt(10, () => L.keygen(new Uint8Array(48).fill(1)).publicKey.toBytes(true), 1),
    signMs: timeIt(10, () => L.sign(L.hash(msg, DST), nsk[0].secretKey).toBytes(true), 1),
    verifyMs: timeIt(
      10,
      () => L.verify(L.sign(L.hash(msg, DST), nsk[0].secretKey).toBytes(true), L.hash(msg, DST), npk[0]),
      1
    ),
    aggregateVerify33Ms: timeIt(10, () => L.verify(nagg, L.hash(msg, DST), L.aggregatePublicKeys(npk.slice(0, 33))), 1)
  }
  return { signers: 33, of: 48, chosen: '@chainsafe/blst', chainsafeBlst: b, nobleCurves: n }
}

/**
 * Chain-side QC v3 verification at the default committee (k = 48 for F = 1/5, 40 bits) among
 * `candidates` registered verifiers, and the attest.record transaction carrying the QC.
 */
export async function qcV3(candidatesN = 1000, rounds = 60): Promise<Record<string, unknown>> {
  const k = committeeSizeFor(DEFAULT_ADVERSARY_MODEL)
  const chainId = 'quorate-bench'
  const members = Array.from({ length: candidatesN }, (_, i) => ({
    nodeId: ed25519Signer(sha256(utf8.encode(`qc3 node ${i}`))).nodeId,
    bls: blsKeyFromSeed(sha256(utf8.encode(`qc3 bls ${i}`)))
  }))
  const byId = new Map(members.map(m => [m.nodeId, m.bls]))
  const candidates = members.map(m => ({ nodeId: m.nodeId, blsPublicKey: m.bls.publicKey }))
  const nodeKey = ed25519Signer(sha256(utf8.encode('qc3 subject')))
  const nodeId = nodeKey.nodeId
  const full: number[] = []
  const kept: number[] = []
  const single: number[] = []
  const collect: number[] = []
  const collectDeferred: number[] = []
  let qcBytes = 0
  let txBytes = 0
  let failTxBytes = 0
  for (let r = 0; r < rounds; r++) {
    const seed = sha256(utf8.encode(`qc3 seed ${r}`))
    const committee = drawCommittee({ seed, nodeId, candidates: candidates.map(c => c.nodeId), k })
    const fail = r % 2 === 1
    const message = {
      chainId,
      nodeId,
      round: r,
      outcome: fail ? ('fail' as const) : ('pass' as const),
      evidenceDigest: sha256(seed),
      failedClaims: fail ? ['containers', 'firmware', 'freshness', 'identity', 'os'] : []
    }
    const verdicts = committee.map(id => encodeMemberVerdict(signMemberVerdict(message, id, byId.get(id) as BlsSigner)))
    const withKeys = committee.map(id => ({ nodeId: id, blsPublicKey: (byId.get(id) as BlsSigner).publicKey }))
    let t0 = performance.now()
    const c = new CertificateCollector({ chainId, nodeId, round: r, committee: withKeys })
    for (const v of verdicts) {
      c.add(v)
      if (c.outcome() !== undefined) break
    }
    collect.push(performance.now() - t0)
    t0 = performance.now()
    const d = new CertificateCollector({ chainId, nodeId, round: r, committee: withKeys, deferSignatures: true })
    for (const v of verdicts) {
      d.add(v)
      if (d.outcome() !== undefined) break
    }
    const { qc } = d.certificate()
    collectDeferred.push(performance.now() - t0)
    const input = { qc, chainId, nodeId, round: r, seed, candidates, k }
    t0 = performance.now()
    verifyCertificate(input)
    full.push(performance.now() - t0)
    t0 = performance.now()
    verifyCertificate({ ...input, committee })
    kept.push(performance.now() - t0)
    t0 = performance.now()
    verifyMemberVerdict({ ...input, verdict: verdicts[0], committee })
    single.push(performance.now() - t0)
    const tx = buildTx(
      'attest.record',
      { nodeId, round: r, qc } as Parameters<typeof buildTx<'attest.record'>>[1],
      nodeKey,
      r + 1,
      chainId
    ).length
    qcBytes = Math.max(qcBytes, qc.length)
    if (fail) failTxBytes = Math.max(failTxBytes, tx)
    else txBytes = Math.max(txBytes, tx)
  }
  const ms = (xs: number[]): { p50: number; p90: number } => ({
    p50: r2(pct(xs.slice(3), 0.5)),
    p90: r2(pct(xs.slice(3), 0.9))
  })
  return {
    k,
    threshold: threshold(k),
    candidates: candidatesN,
    chainVerifyQcMs: ms(full),
    chainVerifyQcKeptCommitteeMs: ms(kept),
    singleVerdictVerifyMs: ms(single),
    // the node's side: take verdicts until the threshold, checking each on arrival or together
    collectThresholdVerdictsMs: { eachChecked: ms(collect), deferredAggregateCheck: ms(collectDeferred) },
    qcBytesMax: qcBytes,
    attestRecordTxBytesMax: { pass: txBytes, failFiveClaims: failTxBytes },
    targets: { chainVerifyQcP50Ms: 5, attestRecordTxBytes: 1024 }
  }
}

export async function simulate(nodes: number, ks: readonly number[]): Promise<Record<string, unknown>> {
  const chainId = 'quorate-bench'
  const keys = Array.from({ length: nodes }, (_, i) => ({
    id: ed25519Signer(sha256(utf8.encode(`sim node ${i}`))),
    bls: blsKeyFromSeed(sha256(utf8.encode(`sim bls ${i}`)))
  }))
  const ids = keys.map(s => s.id.nodeId)
  const byId = new Map(keys.map(s => [s.id.nodeId, s]))
  const candidates = keys.map(s => ({ nodeId: s.id.nodeId, blsPublicKey: s.bls.publicKey }))
  const out: Record<string, unknown> = {}
  for (const k of ks) {
    const duty = new Map<string, number>()
    const txBytes: number[] = []
    let tSelect = 0
    let tSign = 0
    let tCollect = 0
    let tChain = 0
    for (let i = 0; i < nodes; i++) {
      const nodeId = ids[i]
      const seed = sha256(utf8.encode(`block ${i}`), utf8.encode(nodeId))
      let t0 = performance.now()
      const committee = drawCommittee({ seed, nodeId, candidates: ids, k })
      tSelect += performance.now() - t0
      const message = {
        chainId,
        nodeId,
        round: 1,
        outcome: 'pass' as const,
        evidenceDigest: sha256(seed),
        failedClaims: []
      }
      const c = new CertificateCollector({
        chainId,
        nodeId,
        round: 1,
        committee: committee.map(id => ({
          nodeId: id,
          blsPublicKey: (byId.get(id) as { bls: BlsSigner }).bls.publicKey
        })),
        deferSignatures: true
      })
      // members appraise (simulated) and sign; the node takes verdicts until the threshold
      for (const m of committee) {
        duty.set(m, (duty.get(m) ?? 0) + 1)
        t0 = performance.now()
        const v = encodeMemberVerdict(signMemberVerdict(message, m, (byId.get(m) as { bls: BlsSigner }).bls))
        tSign += performance.now() - t0
        t0 = performance.now()
        c.add(v)
        const done = c.outcome() !== undefined
        tCollect += performance.now() - t0
        if (done) break
      }
      t0 = performance.now()
      const { qc } = c.certificate()
      tCollect += performance.now() - t0
      // chain: QC check against the committee it kept with the seed
      t0 = performance.now()
      verifyCertificate({ qc, chainId, nodeId, round: 1, seed, candidates, k, committee })
      tChain += performance.now() - t0
      // the whole attest.record transaction as broadcast (body + envelope + signature)
      txBytes.push(
        buildTx('attest.record', { nodeId, round: 1, qc }, (byId.get(nodeId) as { id: VerdictSigner }).id, 12, chainId)
          .length
      )
    }
    const duties = ids.map(id => duty.get(id) ?? 0)
    out[`k${k}`] = {
      k,
      threshold: threshold(k),
      perNode: {
        verdictsSignedMean: r2(duties.reduce((a, b) => a + b, 0) / nodes),
        verdictsSignedMax: Math.max(...duties)
      },
      msPerRound: {
        drawCommittee: r2(tSelect / nodes),
        signVerdicts: r2(tSign / nodes),
        nodeCollectDeferred: r2(tCollect / nodes),
        chainVerifyQcKeptCommittee: r2(tChain / nodes)
      },
      attestRecordTxBytes: {
        mean: Math.round(txBytes.reduce((a, b) => a + b, 0) / nodes),
        max: Math.max(...txBytes),
        targetMax: 1024
      }
    }
  }
  return { nodes, ...out }
}

/**
 * The loopback benches' appraisal: EK chain (cached per certificate, as members do) and the quote
 * (signature, nonce); reference values are the whole appraiser's business (bench/appraisal.ts).
 */
async function benchAppraiser(ekCaPems: readonly string[]): Promise<import('../agent/p2p/index.ts').Appraise> {
  const { checkQuote } = await import('../attestation/quote.ts')
  const { createEkTrustStore, verifyEkCertificateCached } = await import('../attestation/ekcert.ts')
  const store = createEkTrustStore([...ekCaPems])
  return async e => {
    const failed: string[] = []
    try {
      verifyEkCertificateCached(e.ekCertificate, store)
    } catch {
      failed.push('identity')
    }
    if (
      checkQuote(
        { attest: e.quote.attest, signature: e.quote.signature, akPublic: e.akPublic, pcrs: e.pcrs },
        { nonce: e.nonce }
      ).problems.length > 0
    )
      failed.push('freshness')
    return { ok: failed.length === 0, failed, digest: sha256(encode({ failed, nonce: e.nonce })) }
  }
}

export async function loopback(ks: readonly number[], rounds: number): Promise<Record<string, unknown>> {
  // Imported lazily: the simulation must run even where swtpm or the addon is missing.
  const { startSwtpm } = await import('../test/helpers/swtpm.ts')
  const { openTpm } = await import('../attestation/tpm/index.ts')
  const { generateKeyPair } = await import('@libp2p/crypto/keys')
  const p2p = await import('../agent/p2p/index.ts')
  const { FakeChain, nodeKey: makeMemberKey, memberKeys } = await import('../test/p2p/fakes.ts')
  const sw = await startSwtpm()
  const tpm = await openTpm({ tcti: sw.tcti })
  const appraise = await benchAppraiser(sw.ekCaPems)
  const { tpm: counted, quotes } = countingTpm(tpm)
  const hosts: import('../agent/p2p/index.ts').P2PHost[] = []
  const out: Record<string, unknown> = {}
  try {
    const nodeKey = await generateKeyPair('Ed25519')
    const node = await p2p.createP2PHost({ privateKey: nodeKey })
    hosts.push(node)
    const responder = new p2p.AttestationResponder({ tpm: counted })
    const id = await responder.identity()
    const memberHosts: { host: import('../agent/p2p/index.ts').P2PHost; signer: VerdictSigner }[] = []
    for (let i = 0; i < Math.max(...ks); i++) {
      const { key, signer } = await makeMemberKey() // ed25519 identity + BLS verdict key
      const host = await p2p.createP2PHost({ privateKey: key })
      hosts.push(host)
      memberHosts.push({ host, signer })
    }
    for (const k of ks) {
      const chain = new FakeChain(k)
      const nodeSigner = ed25519Signer(nodeKey)
      chain.register(nodeSigner.nodeId, {
        ekCertificate: id.ekCertificate,
        akPublic: id.akPublic,
        addrs: [],
        publicKey: nodeSigner.publicKey
      })
      for (const m of memberHosts.slice(0, k)) {
        await m.host.unhandle(p2p.PROTOCOL_CERTIFY)
        await new p2p.CommitteeMember({
          ...memberKeys(m.signer),
          chain,
          appraise,
          makeCredential: p2p.tpmMakeCredential()
        }).register(m.host)
        chain.register(m.signer.nodeId, {
          ekCertificate: new Uint8Array(1),
          akPublic: new Uint8Array(1),
          addrs: m.host.getMultiaddrs().map(a => a.toString()),
          publicKey: m.signer.publicKey
        })
      }
      const times: number[] = []
      let firstMs = 0
      const q0 = quotes()
      let cpu: NodeJS.CpuUsage | undefined
      for (let i = 0; i <= rounds; i++) {
        if (i === 1) cpu = process.cpuUsage()
        const t0 = performance.now()
        const r = await p2p.runCertificationRound({
          host: node,
          responder,
          chain,
          ...(i === 0 ? { challengeTimeoutMs: 30_000 } : {})
        }) // first round dials k hosts
        const ms = performance.now() - t0
        if (r.outcome !== 'pass') throw new Error(`round failed: ${JSON.stringify(r.unresponsive)}`)
        if (i === 0) firstMs = ms
        else times.push(ms)
        if (process.env.QUORATE_BENCH_TRACE === '1') process.stderr.write(`k=${k} round ${i}: ${ms.toFixed(0)} ms\n`)
      }
      const used = process.cpuUsage(cpu)
      out[`k${k}`] = {
        k,
        // CPU of the whole process (node + k members + swtpm client) per round: less load-sensitive than wall time
        cpuMsPerRound: r2((used.user + used.system) / 1000 / rounds),
        firstRoundMs: r2(firstMs), // includes MakeCredential/ActivateCredential for every member and dialing
        p50Ms: r2(pct(times, 0.5)),
        p90Ms: r2(pct(times, 0.9)),
        rounds,
        quotesPerRound: (quotes() - q0) / (rounds + 1),
        qcBytes: chain.records.at(-1)?.qcBytes
      }
    }
  } finally {
    await Promise.all(
      hosts.map(async h => {
        await h.stop()
      })
    )
    await tpm.close()
    await sw.stop()
  }
  return { targetP50MsK48: 100, ...out }
}

type SplitMsg =
  | { op: 'ready'; addrs: Record<string, string[]> }
  | { op: 'chain'; id: number; fn: 'roundInfo' | 'nodeRecord'; args: [string, number] }
  | { op: 'cpu'; micros: number }

/**
 * Members in worker threads: the node's host, its TPM (swtpm) and the round driver in the main
 * thread; the k members in `workers` threads (each with its own libp2p hosts, appraiser and BLS
 * keys; chain reads go to the main thread's in-memory chain over a MessagePort, standing for the
 * member's RPC). What a node waits for when its members run elsewhere — here they still share
 * this machine's cores, so the wall time is an upper bound of the deployment's. Also reported:
 * the node thread's CPU per round and the members' CPU per session (each would spend it on its
 * own machine, in parallel).
 */
export async function loopbackSplit(k: number, rounds: number, workers = 2): Promise<Record<string, unknown>> {
  const { Worker } = await import('node:worker_threads')
  const { startSwtpm } = await import('../test/helpers/swtpm.ts')
  const { openTpm } = await import('../attestation/tpm/index.ts')
  const { generateKeyPair, privateKeyToProtobuf } = await import('@libp2p/crypto/keys')
  const p2p = await import('../agent/p2p/index.ts')
  const { FakeChain, nodeKey: makeMemberKey } = await import('../test/p2p/fakes.ts')
  const sw = await startSwtpm()
  const tpm = await openTpm({ tcti: sw.tcti })
  const { tpm: counted, quotes } = countingTpm(tpm)
  const threads: import('node:worker_threads').Worker[] = []
  let node: import('../agent/p2p/index.ts').P2PHost | undefined
  try {
    const nodePriv = await generateKeyPair('Ed25519')
    node = await p2p.createP2PHost({ privateKey: nodePriv })
    const responder = new p2p.AttestationResponder({ tpm: counted })
    const id = await responder.identity()
    const chain = new FakeChain(k)
    // CPU the main thread spends being the chain (answering members' reads, checking the QC at
    // attest.record): a deployment's chain node does this, not the node being certified
    let chainMicros = 0
    const record = chain.recordAttestation.bind(chain)
    chain.recordAttestation = async (...a: Parameters<typeof record>) => {
      const c0 = process.threadCpuUsage()
      try {
        return await record(...a)
      } finally {
        const c = process.threadCpuUsage(c0)
        chainMicros += c.user + c.system
      }
    }
    const nodeSigner = ed25519Signer(nodePriv)
    chain.register(nodeSigner.nodeId, {
      ekCertificate: id.ekCertificate,
      akPublic: id.akPublic,
      addrs: [],
      publicKey: nodeSigner.publicKey
    })
    const keys = await Promise.all(Array.from({ length: k }, () => makeMemberKey()))
    const cpuWaiters: ((micros: number) => void)[] = []
    const ready: Promise<Record<string, string[]>>[] = []
    for (let w = 0; w < workers; w++) {
      const mine = keys.filter((_, i) => i % workers === w)
      const t = new Worker(new URL(import.meta.url), {
        workerData: {
          role: 'quorum-members',
          ekCaPems: sw.ekCaPems,
          members: mine.map(m => ({ key: privateKeyToProtobuf(m.key), bls: m.bls.exportSecret() }))
        }
      })
      threads.push(t)
      ready.push(
        new Promise((resolve, reject) => {
          t.once('error', reject)
          t.on('message', (m: SplitMsg) => {
            if (m.op === 'ready') resolve(m.addrs)
            else if (m.op === 'cpu') cpuWaiters.shift()?.(m.micros)
            else if (m.op === 'chain') {
              const c0 = process.threadCpuUsage()
              const answer = m.fn === 'roundInfo' ? chain.roundInfo(m.args[0], m.args[1]) : chain.nodeRecord(m.args[0])
              void answer.then(result => {
                t.postMessage({ op: 'chain', id: m.id, result })
                const c = process.threadCpuUsage(c0)
                chainMicros += c.user + c.system
              })
            }
          })
        })
      )
    }
    for (const addrs of await Promise.all(ready))
      for (const [memberId, a] of Object.entries(addrs)) {
        const m = keys.find(x => x.signer.nodeId === memberId) as (typeof keys)[number]
        chain.register(memberId, {
          ekCertificate: new Uint8Array(1),
          akPublic: new Uint8Array(1),
          addrs: a,
          publicKey: m.signer.publicKey
        })
      }
    const memberCpu = async (): Promise<number> => {
      let sum = 0
      for (const t of threads) {
        const got = new Promise<number>(resolve => cpuWaiters.push(resolve))
        t.postMessage({ op: 'cpu' })
        sum += await got
      }
      return sum
    }
    const times: number[] = []
    let firstMs = 0
    const q0 = quotes()
    let nodeCpu0 = process.threadCpuUsage()
    let memberCpu0 = 0
    let chainMicros0 = 0
    const phases = { challenges: [] as number[], verdicts: [] as number[] }
    for (let i = 0; i <= rounds; i++) {
      if (i === 1) {
        memberCpu0 = await memberCpu()
        nodeCpu0 = process.threadCpuUsage()
        chainMicros0 = chainMicros
      }
      const t0 = performance.now()
      const at: Record<string, number> = {}
      const r = await p2p.runCertificationRound({
        host: node,
        responder,
        chain,
        onProgress: e => {
          at[e.type] ??= performance.now()
        },
        ...(i === 0 ? { challengeTimeoutMs: 30_000 } : {})
      })
      const ms = performance.now() - t0
      if (i > 0) {
        phases.challenges.push(at.quoted - at.committee) // streams opened, nonces back, and the one quote
        phases.verdicts.push(at.recorded - at.quoted) // evidence out, threshold of verdicts in, QC, record
      }
      if (r.outcome !== 'pass') throw new Error(`round failed: ${JSON.stringify(r.unresponsive)}`)
      if (i === 0) firstMs = ms
      else times.push(ms)
      if (process.env.QUORATE_BENCH_TRACE === '1')
        process.stderr.write(`split k=${k} round ${i}: ${ms.toFixed(0)} ms\n`)
    }
    const nodeCpu = process.threadCpuUsage(nodeCpu0)
    const membersMicros = (await memberCpu()) - memberCpu0
    return {
      k,
      workers,
      rounds,
      firstRoundMs: r2(firstMs),
      p50Ms: r2(pct(times, 0.5)),
      p90Ms: r2(pct(times, 0.9)),
      // the node's own thread: request, streams to k members, one quote's client side, collection, QC (not the chain's part)
      nodeThreadCpuMsPerRound: r2((nodeCpu.user + nodeCpu.system - (chainMicros - chainMicros0)) / 1000 / rounds),
      chainCpuMsPerRound: r2((chainMicros - chainMicros0) / 1000 / rounds),
      phaseP50Ms: {
        challengesAndQuote: r2(pct(phases.challenges, 0.5)),
        verdictsToRecord: r2(pct(phases.verdicts, 0.5))
      },
      // one member's session, averaged over the k members (each also serves sessions the node stops reading after the threshold)
      memberCpuMsPerSession: r2(membersMicros / 1000 / rounds / k),
      quotesPerRound: (quotes() - q0) / (rounds + 1),
      targetP50Ms: 100
    }
  } finally {
    await Promise.all(threads.map(async t => await t.terminate()))
    await node?.stop()
    await tpm.close()
    await sw.stop()
  }
}

/** Worker side of loopbackSplit: hosts and serves its share of the committee until terminated. */
async function serveMembers(data: {
  ekCaPems: string[]
  members: { key: Uint8Array; bls: Uint8Array }[]
}): Promise<void> {
  const { parentPort } = await import('node:worker_threads')
  const port = parentPort as import('node:worker_threads').MessagePort
  const { privateKeyFromProtobuf } = await import('@libp2p/crypto/keys')
  const { blsKeyFromSecret } = await import('../attestation/quorum/index.ts')
  const p2p = await import('../agent/p2p/index.ts')
  const { FAKE_CHAIN_ID } = await import('../test/p2p/fakes.ts')
  const appraise = await benchAppraiser(data.ekCaPems)
  let next = 0
  const waiting = new Map<number, (v: unknown) => void>()
  const ask = (fn: 'roundInfo' | 'nodeRecord', args: [string, number]): Promise<unknown> =>
    new Promise(resolve => {
      const id = next++
      waiting.set(id, resolve)
      port.postMessage({ op: 'chain', id, fn, args })
    })
  const chain = {
    roundInfo: async (nodeId: string, round: number) =>
      (await ask('roundInfo', [nodeId, round])) as Awaited<
        ReturnType<import('../agent/p2p/index.ts').MemberChainPort['roundInfo']>
      >,
    nodeRecord: async (nodeId: string) =>
      (await ask('nodeRecord', [nodeId, 0])) as Awaited<
        ReturnType<import('../agent/p2p/index.ts').MemberChainPort['nodeRecord']>
      >
  }
  port.on('message', (m: { op: string; id?: number; result?: unknown }) => {
    if (m.op === 'chain') {
      waiting.get(m.id as number)?.(m.result)
      waiting.delete(m.id as number)
    } else if (m.op === 'cpu') {
      const c = process.threadCpuUsage()
      port.postMessage({ op: 'cpu', micros: c.user + c.system })
    }
  })
  const addrs: Record<string, string[]> = {}
  for (const m of data.members) {
    const key = privateKeyFromProtobuf(m.key) as import('@libp2p/interface').Ed25519PrivateKey
    const signer = ed25519Signer(key)
    const host = await p2p.createP2PHost({ privateKey: key })
    await new p2p.CommitteeMember({
      signer,
      bls: blsKeyFromSecret(m.bls),
      chainId: FAKE_CHAIN_ID,
      chain,
      appraise,
      makeCredential: p2p.tpmMakeCredential()
    }).register(host)
    addrs[signer.nodeId] = host.getMultiaddrs().map(a => a.toString())
  }
  port.postMessage({ op: 'ready', addrs })
}

export async function run(): Promise<Record<string, unknown>> {
  const result: Record<string, unknown> = {}
  result.bls = await blsComparison()
  result.qcV3 = await qcV3()
  try {
    result.loopback = await loopback([7, committeeSizeFor(DEFAULT_ADVERSARY_MODEL)], 15)
  } catch (err) {
    result.loopback = { error: (err as Error).message }
  }
  try {
    // the same round with the members out of the node's thread (what the node itself spends and waits for)
    result.loopbackMembersInWorkers = await loopbackSplit(committeeSizeFor(DEFAULT_ADVERSARY_MODEL), 15, 2)
  } catch (err) {
    result.loopbackMembersInWorkers = { error: (err as Error).message }
  }
  result.simulation = await simulate(1000, [7, committeeSizeFor(DEFAULT_ADVERSARY_MODEL)])
  return result
}

if (!isMainThread && (workerData as { role?: string } | null)?.role === 'quorum-members') {
  await serveMembers(workerData as Parameters<typeof serveMembers>[0])
} else if (isMainThread && import.meta.url === `file://${process.argv[1]}`) {
  process.stdout.write(JSON.stringify(await run(), null, 2) + '\n')
}
