// Real libp2p hosts on 127.0.0.1 with fake TPMs and a fake chain (the driver's ChainPort):
// credential + evidence round trips, one quote per round, silent members, binding failures,
// oversized messages.
import t from 'tap'
import { randomBytes } from 'node:crypto'
import {
  createP2PHost,
  AttestationResponder,
  CommitteeMember,
  runCertificationRound,
  verifyPeer,
  Framed,
  PeerRefusedError,
  PROTOCOL_CERTIFY,
  PROTOCOL_EVIDENCE,
  MESSAGE_LIMITS,
  RoundFailedError,
  type P2PHost,
  type RoundProgress,
  type ChainPort
} from '../../agent/p2p/index.ts'
import { encodeHello, encodeChallenge, decodeChallenge, encodeEvidenceMsg } from '../../agent/p2p/messages.ts'
import { encodeVarint } from '../../agent/p2p/framing.ts'
import { decodeCertificate, decodeMemberVerdict, bitmapIndices, threshold } from '../../attestation/quorum/index.ts'
import { dialTarget } from '../../agent/p2p/host.ts'
import { FakeTpm, FakeChain, fakeMakeCredential, fakeAppraise, nodeKey, memberKeys } from './fakes.ts'

interface Peer {
  host: P2PHost
  tpm: FakeTpm
  responder: AttestationResponder
  member: CommitteeMember
  id: string
  addr: string
}

const chain = new FakeChain(4)
const makeCred = fakeMakeCredential()
const peers: Peer[] = []

async function addPeer(opts: { silent?: boolean; pcr0?: Uint8Array; windowMs?: number } = {}): Promise<Peer> {
  const { key, signer } = await nodeKey()
  const host = await createP2PHost({ privateKey: key })
  const tpm = new FakeTpm(signer.nodeId, opts.pcr0 as Uint8Array<ArrayBuffer> | undefined)
  const responder = new AttestationResponder({ tpm, batchWindowMs: opts.windowMs ?? 10 })
  const member = new CommitteeMember({
    ...memberKeys(signer),
    chain,
    appraise: fakeAppraise,
    makeCredential: makeCred,
    timeoutMs: 5000,
    seedWaitMs: 200
  })
  if (opts.silent === true) {
    // accepts the stream, then never answers (a hung member)
    await host.handle(PROTOCOL_CERTIFY, () => {})
  } else {
    await member.register(host)
  }
  await responder.register(host)
  const addr = host.getMultiaddrs()[0].toString()
  chain.register(signer.nodeId, {
    ekCertificate: tpm.ekCert,
    akPublic: tpm.akPublic,
    addrs: [addr],
    publicKey: signer.publicKey
  })
  const p = { host, tpm, responder, member, id: signer.nodeId, addr }
  peers.push(p)
  return p
}

t.teardown(async () => {
  await Promise.all(
    peers.map(async p => {
      await p.host.stop()
    })
  )
})

const node = await addPeer({ windowMs: 150 })
const members: Peer[] = []
for (let i = 0; i < 4; i++) members.push(await addPeer())

t.test('one-off verify: evidence + credential challenge round trip', async t => {
  const verifier = members[0]
  const r = await verifyPeer({
    host: verifier.host,
    peer: node.addr,
    makeCredential: makeCred,
    appraise: fakeAppraise,
    registered: chain.nodes.get(node.id)
  })
  t.equal(r.pass, true)
  t.equal(r.credentialActivated, true)
  t.equal(r.nodeId, node.id)
  t.equal(node.tpm.activations, 1)
  // by node id + registered addresses too
  const r2 = await verifyPeer({
    host: verifier.host,
    peer: node.id,
    addrs: [node.addr.replace(/\/p2p\/.*$/, '')],
    makeCredential: makeCred,
    appraise: fakeAppraise
  })
  t.equal(r2.pass, true)
  // the evidence protocol batches verifiers arriving together into ONE quote
  for (const m of members) await m.host.dial(dialTarget(node.addr).addrs)
  const before = node.tpm.quotes
  const rs = await Promise.all(
    members.map(
      async m => await verifyPeer({ host: m.host, peer: node.addr, makeCredential: makeCred, appraise: fakeAppraise })
    )
  )
  t.ok(rs.every(x => x.pass))
  t.equal(node.tpm.quotes - before, 1, 'four concurrent verifiers, one quote')
})

t.test('certification round: k = 4 members, one quote, QC accepted by the chain rules', async t => {
  const events: RoundProgress[] = []
  const quotes = node.tpm.quotes
  const r = await runCertificationRound({
    host: node.host,
    responder: node.responder,
    chain,
    onProgress: e => {
      events.push(e)
    }
  })
  t.equal(r.outcome, 'pass')
  t.equal(node.tpm.quotes - quotes, 1, 'exactly one quote for the whole committee')
  t.equal(r.committee.length, 4)
  t.same([...r.committee].sort(), members.map(m => m.id).sort())
  t.ok(r.pass >= threshold(4))
  const qc = decodeCertificate(r.qc)
  t.ok(bitmapIndices(qc.signers).length >= threshold(4), 'a QC v3 signed by at least the threshold')
  t.equal(chain.records.at(-1)?.outcome, 'pass', 'the chain (real QuorumRules) accepted it')
  t.ok(r.qc.length < 2048, `QC of ${r.qc.length} bytes`)
  t.ok(events.some(e => e.type === 'quoted' && e.nonces === 4))
  t.equal(
    events.filter(e => e.type === 'challenged' && e.credential).length,
    4,
    'first round: every member binds AK to EK'
  )
  // second round: the members cached the AK binding, no credential challenges
  const events2: RoundProgress[] = []
  const r2 = await runCertificationRound({
    host: node.host,
    responder: node.responder,
    chain,
    onProgress: e => {
      events2.push(e)
    }
  })
  t.equal(r2.outcome, 'pass')
  t.equal(r2.round, r.round + 1)
  t.equal(
    events2.filter(e => e.type === 'challenged' && e.credential).length,
    0,
    'AK binding cached per verifier and AK'
  )
})

t.test('a round over connections still open to its members reads no member addresses from the chain', async t => {
  let asked = 0
  const counting: ChainPort = {
    requestAttestation: async id => await chain.requestAttestation(id),
    waitForRound: async (id, round) => await chain.waitForRound(id, round),
    addresses: async id => {
      asked++
      return await chain.addresses(id)
    },
    recordAttestation: async (id, round, qc) => await chain.recordAttestation(id, round, qc)
  }
  for (const m of members) await node.host.hangUp(m.host.peerId)
  const r1 = await runCertificationRound({ host: node.host, responder: node.responder, chain: counting })
  t.equal(r1.outcome, 'pass')
  t.equal(asked, r1.committee.length, 'not connected: every member is dialled at its registered addresses')
  asked = 0
  const r2 = await runCertificationRound({ host: node.host, responder: node.responder, chain: counting })
  t.equal(r2.outcome, 'pass')
  t.equal(asked, 0, 'connected: streams open on the existing connections')
})

t.test('a node with bad firmware gets a fail QC', async t => {
  const bad = await addPeer({ pcr0: new Uint8Array(32).fill(7) })
  try {
    const r = await runCertificationRound({ host: bad.host, responder: bad.responder, chain })
    t.equal(r.outcome, 'fail')
    t.same(decodeCertificate(r.qc).failedClaims, ['firmware'])
    t.same(r.failedClaims, ['firmware'])
    t.equal(chain.records.at(-1)?.outcome, 'fail')
  } finally {
    chain.nodes.delete(bad.id) // keep the candidate set for later tests
  }
})

t.test('a member that never answers: the round completes from the rest', async t => {
  const silent = await addPeer({ silent: true })
  // 5 candidates besides the node, k = 4: retry seeds until the silent one is drawn
  let r: Awaited<ReturnType<typeof runCertificationRound>> | undefined
  for (let i = 0; i < 20; i++) {
    const events: RoundProgress[] = []
    r = await runCertificationRound({
      host: node.host,
      responder: node.responder,
      chain,
      challengeTimeoutMs: 3000,
      challengeGraceMs: 200,
      onProgress: e => {
        events.push(e)
      }
    })
    if (r.committee.includes(silent.id)) {
      t.equal(r.outcome, 'pass')
      t.same(r.unresponsive, [silent.id])
      t.ok(events.some(e => e.type === 'member-failed' && e.member === silent.id))
      break
    }
  }
  t.ok(r?.committee.includes(silent.id), 'the silent member was drawn at least once')
  chain.nodes.delete(silent.id)
  await silent.host.stop()
})

t.test('the node cannot record its QC: a member it handed the QC to records it', async t => {
  const down: ChainPort = {
    requestAttestation: async id => await chain.requestAttestation(id),
    waitForRound: async (id, r) => await chain.waitForRound(id, r),
    addresses: async id => await chain.addresses(id),
    recordAttestation: async () => {
      throw new Error('chain RPC unreachable')
    }
  }
  await t.rejects(runCertificationRound({ host: node.host, responder: node.responder, chain: down }), /unreachable/)
  const round = chain.lastRound.get(node.id) ?? 0
  const rec = await chain.waitRecorded(node.id, round)
  t.equal(rec.outcome, 'pass')
  t.equal(rec.by, 'member', 'recorded by a committee member, not the node')
  t.equal(members.reduce((n, m) => n + m.member.qcsRecorded, 0) >= 1, true)
})

t.test('cancellation: an aborted signal stops the round before anything is sent', async t => {
  const before = chain.records.length
  const rounds = chain.lastRound.get(node.id)
  await t.rejects(
    runCertificationRound({
      host: node.host,
      responder: node.responder,
      chain,
      signal: AbortSignal.abort(new Error('shutting down'))
    }),
    /shutting down/
  )
  t.equal(chain.records.length, before)
  t.equal(chain.lastRound.get(node.id), rounds, 'no attest.request sent')
})

t.test('too few members reachable: the round fails cleanly (transient)', async t => {
  const lonely = new FakeChain(4)
  const { key } = await nodeKey()
  const h = await createP2PHost({ privateKey: key })
  peers.push({ host: h } as Peer)
  lonely.register(h.peerId.toString(), {
    ekCertificate: new Uint8Array(1),
    akPublic: new Uint8Array(1),
    addrs: [],
    publicKey: new Uint8Array(32)
  })
  const ghost = await nodeKey()
  lonely.register(ghost.signer.nodeId, {
    ekCertificate: new Uint8Array(1),
    akPublic: new Uint8Array(1),
    addrs: ['/ip4/127.0.0.1/tcp/9'],
    publicKey: ghost.signer.publicKey
  })
  await t.rejects(
    runCertificationRound({ host: h, responder: node.responder, chain: lonely, challengeTimeoutMs: 1000 }),
    RoundFailedError
  )
})

t.test('member refuses: unknown round, wrong peer, oversized frame', async t => {
  const m = members[0]
  const target = dialTarget(m.addr)
  const talk = async (from: P2PHost, hello: Uint8Array): Promise<unknown> => {
    const f = new Framed(await from.dialProtocol(target.addrs, PROTOCOL_CERTIFY))
    await f.write(hello)
    try {
      return decodeChallenge(await f.read(MESSAGE_LIMITS.small, AbortSignal.timeout(5000)))
    } finally {
      await f.close()
    }
  }
  await t.rejects(
    talk(node.host, encodeHello({ nodeId: node.id, round: 999, ekPublic: new Uint8Array(4) })),
    /ERR_UNKNOWN_ROUND/
  )
  await t.rejects(
    talk(node.host, encodeHello({ nodeId: members[1].id, round: 1, ekPublic: new Uint8Array(4) })),
    /ERR_PEER_MISMATCH/
  )
  // oversized frame: the member rejects on the length prefix, before buffering
  const f = new Framed(await node.host.dialProtocol(target.addrs, PROTOCOL_CERTIFY))
  f.stream.send(encodeVarint(MESSAGE_LIMITS.small + 1))
  f.stream.send(new Uint8Array(1000))
  await t.rejects(f.read(MESSAGE_LIMITS.small, AbortSignal.timeout(5000)).then(decodeChallenge), PeerRefusedError)
  f.abort(new Error('done'))
  const g = new Framed(await node.host.dialProtocol(target.addrs, PROTOCOL_CERTIFY))
  g.stream.send(encodeVarint(MESSAGE_LIMITS.small + 1))
  await t.rejects(g.read(MESSAGE_LIMITS.small, AbortSignal.timeout(5000)).then(decodeChallenge), /ERR_TOO_LARGE/)
  g.abort(new Error('done'))
})

t.test('replayed bundle and quote for another nonce: failing verdicts (freshness)', async t => {
  const { round } = await chain.requestAttestation(node.id)
  const committee = chain.committeeOf(node.id, round)
  const m = members.find(x => x.id === committee[0]) as Peer
  const target = dialTarget(m.addr)
  // an old bundle (from a previous quote) replayed to a fresh challenge
  const old = await node.responder.evidence([new Uint8Array(randomBytes(32))])
  const f = new Framed(await node.host.dialProtocol(target.addrs, PROTOCOL_CERTIFY))
  await f.write(encodeHello({ nodeId: node.id, round, ekPublic: new Uint8Array(4) }))
  const ch = decodeChallenge(await f.read(MESSAGE_LIMITS.small, AbortSignal.timeout(5000)))
  const secret = ch.credential !== undefined ? await node.responder.activate(ch.credential) : undefined
  await f.write(encodeEvidenceMsg({ evidence: old.bytes, secret }))
  const { decodeVerdictMsg } = await import('../../agent/p2p/messages.ts')
  const vm = decodeVerdictMsg(await f.read(MESSAGE_LIMITS.small, AbortSignal.timeout(5000)))
  const v = decodeMemberVerdict(vm.verdict)
  t.equal(v.outcome, 'fail')
  t.same(v.failedClaims, ['freshness'])
  await f.close()
  // the member refuses a second session for the same round (no verdict shopping)
  const g = new Framed(await node.host.dialProtocol(target.addrs, PROTOCOL_CERTIFY))
  await g.write(encodeHello({ nodeId: node.id, round, ekPublic: new Uint8Array(4) }))
  await t.rejects(g.read(MESSAGE_LIMITS.small, AbortSignal.timeout(5000)).then(decodeChallenge), /ERR_ROUND_JUDGED/)
  g.abort(new Error('done'))
  // quote taken for another nonce, list doctored to contain ours
  const m2 = members.find(x => x.id === committee[1]) as Peer
  const judged = await m2.member.judge(
    {
      nodeId: node.id,
      round,
      nonce: ch.nonce,
      registered: chain.nodes.get(node.id) as { ekCertificate: Uint8Array; akPublic: Uint8Array },
      bindKey: 'x'
    },
    {
      evidence: await (async () => {
        const { evidence } = await node.responder.evidence([new Uint8Array(randomBytes(32))])
        const { encodeEvidence, committeeNonce } = await import('../../attestation/evidence.ts')
        return encodeEvidence({ ...evidence, committeeNonces: [ch.nonce], nonce: committeeNonce([ch.nonce]) })
      })()
    }
  )
  t.equal(judged.verdict.outcome, 'fail')
  t.same(judged.appraisal.failed, ['freshness'])
  t.match(String((judged.appraisal.detail as { error: string }).error), /another nonce/)
  // wrong credential secret → identity
  const judged2 = await m2.member.judge(
    {
      nodeId: node.id,
      round: round + 100,
      nonce: ch.nonce,
      registered: chain.nodes.get(node.id) as { ekCertificate: Uint8Array; akPublic: Uint8Array },
      credentialSecret: new Uint8Array(32).fill(1),
      bindKey: 'y'
    },
    { evidence: old.bytes, secret: new Uint8Array(32) }
  )
  t.same(judged2.appraisal.failed, ['identity'])
  void encodeChallenge
})

t.test(
  'one-off verify of a node whose evidence does not decode: every claim fails, as a committee member judges it',
  async t => {
    const { key } = await nodeKey()
    const liar = await createP2PHost({ privateKey: key })
    t.teardown(async () => {
      await liar.stop()
    })
    await liar.handle(PROTOCOL_EVIDENCE, async stream => {
      const f = new Framed(stream)
      await f.read(MESSAGE_LIMITS.small)
      await f.write(encodeEvidenceMsg({ evidence: new Uint8Array(randomBytes(200)) }))
      await f.close()
    })
    const r = await verifyPeer({
      host: members[0].host,
      peer: `${liar.getMultiaddrs()[0].toString()}`,
      makeCredential: makeCred,
      appraise: fakeAppraise
    })
    t.equal(r.pass, false)
    t.same([...r.failed].sort(), ['containers', 'firmware', 'freshness', 'identity', 'os'], 'all claims fail')
    t.match(JSON.stringify(r.appraisal), /malformed/, 'the appraisal says why')
  }
)
