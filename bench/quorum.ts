// Quorum benchmarks.
//  1. loopback: time to certify one node with k = 4, 7, 10 committee members — real libp2p hosts
//     on 127.0.0.1, a real swtpm for the node (one quote per round), real MakeCredential (first
//     round only: bindings are cached), real quote + EK chain checks by every member, in-memory
//     chain port (QC checked by the real QuorumRules).
//  2. simulation of ≥ 1,000 nodes, each certified once: real committee draws, real ed25519 verdict
//     signing, real per-verdict checks by the node, real QC verification by the chain; transport
//     and appraisal simulated. Reports work per node vs k and attest.record bytes.
// Run alone: node_modules/.bin/node bench/quorum.ts
import { performance } from 'node:perf_hooks'
import { countingTpm } from '../test/helpers/counting-tpm.ts'
import { sha256, utf8 } from '../encoding/bytes.ts'
import { encode } from '../encoding/canonical.ts'
import { buildTx } from '../chain/tx.ts'
import {
  ed25519Signer, selectCommittee, signVerdict, QuorumCollector, verifyQuorumCertificate, threshold, type VerdictSigner
} from '../attestation/quorum/index.ts'

function pct (xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b)
  return s.length === 0 ? NaN : s[Math.min(s.length - 1, Math.floor(p * s.length))]
}
const r2 = (x: number): number => Math.round(x * 100) / 100

export async function simulate (nodes: number, ks: readonly number[]): Promise<Record<string, unknown>> {
  const signers: VerdictSigner[] = Array.from({ length: nodes }, (_, i) => ed25519Signer(sha256(utf8.encode(`sim node ${i}`))))
  const ids = signers.map(s => s.nodeId)
  const byId = new Map(signers.map(s => [s.nodeId, s]))
  const candidates = signers.map(s => ({ nodeId: s.nodeId, publicKey: s.publicKey }))
  const digest = sha256(utf8.encode('appraisal'))
  const now = Date.now()
  const out: Record<string, unknown> = {}
  for (const k of ks) {
    const duty = new Map<string, number>()
    const qcBytes: number[] = []
    const bodyBytes: number[] = []
    let tSelect = 0; let tSign = 0; let tCollect = 0; let tChain = 0
    for (let i = 0; i < nodes; i++) {
      const nodeId = ids[i]
      const seed = sha256(utf8.encode(`block ${i}`), utf8.encode(nodeId))
      let t0 = performance.now()
      const committee = selectCommittee(seed, ids.filter(x => x !== nodeId), k)
      tSelect += performance.now() - t0
      // members: appraise (simulated) and sign a verdict each
      t0 = performance.now()
      const verdicts = committee.map(m => {
        duty.set(m, (duty.get(m) ?? 0) + 1)
        return signVerdict({ nodeId, round: 1, pass: true, appraisalDigest: digest, failed: [], expiresAt: now + 86_400_000 }, byId.get(m) as VerdictSigner)
      })
      tSign += performance.now() - t0
      // node: check each verdict on arrival, stop at threshold, build the QC
      t0 = performance.now()
      const c = new QuorumCollector({ nodeId, round: 1, committee })
      for (const v of verdicts) { c.add(v, now); if (c.outcome() !== undefined) break }
      const { qc } = c.certificate()
      tCollect += performance.now() - t0
      // chain: full QC verification (re-derives the committee over all candidates)
      t0 = performance.now()
      verifyQuorumCertificate({ qc, nodeId, round: 1, seed, candidates, now, k })
      tChain += performance.now() - t0
      // the whole attest.record transaction as broadcast (body + envelope + signature)
      qcBytes.push(buildTx('attest.record', { nodeId, round: 1, qc }, byId.get(nodeId) as VerdictSigner, 12, 'quorate-bench').length)
      bodyBytes.push(encode({ nodeId, round: 1, qc }).length)
    }
    const duties = ids.map(id => duty.get(id) ?? 0)
    out[`k${k}`] = {
      k,
      threshold: threshold(k),
      perNode: {
        verdictsSignedMean: r2(duties.reduce((a, b) => a + b, 0) / nodes),
        verdictsSignedMax: Math.max(...duties),
        appraisalsMean: r2(duties.reduce((a, b) => a + b, 0) / nodes),
        verdictChecksForOwnRound: threshold(k)
      },
      msPerRound: {
        selectCommittee: r2(tSelect / nodes),
        signVerdicts: r2(tSign / nodes),
        nodeCollect: r2(tCollect / nodes),
        chainVerifyQc: r2(tChain / nodes)
      },
      attestRecordTxBytes: { mean: Math.round(qcBytes.reduce((a, b) => a + b, 0) / nodes), max: Math.max(...qcBytes), bodyMax: Math.max(...bodyBytes), targetMax: 2048 }
    }
  }
  return { nodes, ...out }
}

async function loopback (ks: readonly number[], rounds: number): Promise<Record<string, unknown>> {
  // Imported lazily: the simulation must run even where swtpm or the addon is missing.
  const { startSwtpm } = await import('../test/helpers/swtpm.ts')
  const { openTpm } = await import('../attestation/tpm/index.ts')
  const { checkQuote } = await import('../attestation/quote.ts')
  const { createEkTrustStore, verifyEkCertificateCached } = await import('../attestation/ekcert.ts')
  const { generateKeyPair } = await import('@libp2p/crypto/keys')
  const p2p = await import('../agent/p2p/index.ts')
  const { FakeChain } = await import('../test/p2p/fakes.ts')
  const sw = await startSwtpm()
  const tpm = await openTpm({ tcti: sw.tcti })
  const store = createEkTrustStore(sw.ekCaPems)
  const appraise: import('../agent/p2p/index.ts').Appraise = async e => {
    const failed: string[] = []
    try { verifyEkCertificateCached(e.ekCertificate, store) } catch { failed.push('identity') }
    if (checkQuote({ attest: e.quote.attest, signature: e.quote.signature, akPublic: e.akPublic, pcrs: e.pcrs }, { nonce: e.nonce }).problems.length > 0) failed.push('freshness')
    return { ok: failed.length === 0, failed, digest: sha256(encode({ failed, nonce: e.nonce })) }
  }
  const { tpm: counted, quotes } = countingTpm(tpm)
  const hosts: import('../agent/p2p/index.ts').P2PHost[] = []
  const out: Record<string, unknown> = {}
  try {
    const nodeKey = await generateKeyPair('Ed25519')
    const node = await p2p.createP2PHost({ privateKey: nodeKey })
    hosts.push(node)
    const responder = new p2p.AttestationResponder({ tpm: counted })
    const id = await responder.identity()
    const memberHosts: { host: import('../agent/p2p/index.ts').P2PHost, signer: VerdictSigner }[] = []
    for (let i = 0; i < Math.max(...ks); i++) {
      const key = await generateKeyPair('Ed25519')
      const host = await p2p.createP2PHost({ privateKey: key })
      hosts.push(host)
      memberHosts.push({ host, signer: ed25519Signer(key) })
    }
    for (const k of ks) {
      const chain = new FakeChain(k)
      const nodeSigner = ed25519Signer(nodeKey)
      chain.register(nodeSigner.nodeId, { ekCertificate: id.ekCertificate, akPublic: id.akPublic, addrs: [], publicKey: nodeSigner.publicKey })
      for (const m of memberHosts.slice(0, k)) {
        await m.host.unhandle(p2p.PROTOCOL_CERTIFY)
        await new p2p.CommitteeMember({ signer: m.signer, chain, appraise, makeCredential: p2p.tpmMakeCredential() }).register(m.host)
        chain.register(m.signer.nodeId, { ekCertificate: new Uint8Array(1), akPublic: new Uint8Array(1), addrs: m.host.getMultiaddrs().map(a => a.toString()), publicKey: m.signer.publicKey })
      }
      const times: number[] = []
      let firstMs = 0
      const q0 = quotes()
      let cpu: NodeJS.CpuUsage | undefined
      for (let i = 0; i <= rounds; i++) {
        if (i === 1) cpu = process.cpuUsage()
        const t0 = performance.now()
        const r = await p2p.runCertificationRound({ host: node, responder, chain })
        const ms = performance.now() - t0
        if (r.outcome !== 'pass') throw new Error(`round failed: ${JSON.stringify(r.unresponsive)}`)
        if (i === 0) firstMs = ms; else times.push(ms)
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
    await Promise.all(hosts.map(async h => { await h.stop() }))
    await tpm.close()
    await sw.stop()
  }
  return { targetP50MsK7: 50, ...out }
}

export async function run (): Promise<Record<string, unknown>> {
  const result: Record<string, unknown> = {}
  try {
    result.loopback = await loopback([4, 7, 10], 15)
  } catch (err) {
    result.loopback = { error: (err as Error).message }
  }
  result.simulation = await simulate(1000, [4, 7, 10])
  return result
}

if (import.meta.url === `file://${process.argv[1]}`) {
  process.stdout.write(JSON.stringify(await run(), null, 2) + '\n')
}
