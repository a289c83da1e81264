// Device tier: the node being certified has a real swtpm (EK certificate from a per-run CA),
// members run the real MakeCredential and check the real quote signature and EK chain.
import t from 'tap'
import { randomBytes, X509Certificate } from 'node:crypto'
import { startSwtpm } from '../helpers/swtpm.ts'
import { countingTpm } from '../helpers/counting-tpm.ts'
import { openTpm, type Tpm } from '../../attestation/tpm/index.ts'
import { checkQuote } from '../../attestation/quote.ts'
import { createEkTrustStore, verifyEkCertificate } from '../../attestation/ekcert.ts'
import { encodeEvidence, committeeNonce, type Evidence } from '../../attestation/evidence.ts'
import { sha256 } from '../../encoding/bytes.ts'
import { encode } from '../../encoding/canonical.ts'
import {
  createP2PHost,
  AttestationResponder,
  CommitteeMember,
  runCertificationRound,
  verifyPeer,
  tpmMakeCredential,
  type Appraise,
  type P2PHost
} from '../../agent/p2p/index.ts'
import { FakeChain, nodeKey, memberKeys } from './fakes.ts'

const sw = await startSwtpm()
const tpm: Tpm = await openTpm({ tcti: sw.tcti })
const { tpm: counted, quotes, activations } = countingTpm(tpm)
const store = createEkTrustStore(sw.ekCaPems)
/** Identity + quote appraisal (the full appraise lives in attestation/; this is the part we need). */
const appraise: Appraise = async (e: Evidence) => {
  const failed: string[] = []
  try {
    verifyEkCertificate(e.ekCertificate, store)
  } catch {
    failed.push('identity')
  }
  const q = checkQuote(
    { attest: e.quote.attest, signature: e.quote.signature, akPublic: e.akPublic, pcrs: e.pcrs },
    { nonce: e.nonce }
  )
  if (q.problems.length > 0) failed.push('freshness')
  return { ok: failed.length === 0, failed, digest: sha256(encode({ failed, nonce: e.nonce })), detail: q.problems }
}

const chain = new FakeChain(3)
const hosts: P2PHost[] = []
t.teardown(async () => {
  await Promise.all(
    hosts.map(async h => {
      await h.stop()
    })
  )
  await tpm.close()
  await sw.stop()
})

const n = await nodeKey()
const nodeHost = await createP2PHost({ privateKey: n.key })
hosts.push(nodeHost)
const responder = new AttestationResponder({ tpm: counted })
await responder.register(nodeHost)
const id = await responder.identity()
chain.register(n.signer.nodeId, {
  ekCertificate: id.ekCertificate,
  akPublic: id.akPublic,
  addrs: nodeHost.getMultiaddrs().map(a => a.toString()),
  publicKey: n.signer.publicKey
})
const members: CommitteeMember[] = []
for (let i = 0; i < 3; i++) {
  const m = await nodeKey()
  const h = await createP2PHost({ privateKey: m.key })
  hosts.push(h)
  const member = new CommitteeMember({ ...memberKeys(m.signer), chain, appraise, makeCredential: tpmMakeCredential() })
  await member.register(h)
  members.push(member)
  chain.register(m.signer.nodeId, {
    ekCertificate: new Uint8Array(1),
    akPublic: new Uint8Array(1),
    addrs: h.getMultiaddrs().map(a => a.toString()),
    publicKey: m.signer.publicKey
  })
}

t.test('real TPM: credential challenge + evidence via verifyPeer', async t => {
  const r = await verifyPeer({
    host: hosts[1],
    peer: `${nodeHost.getMultiaddrs()[0].toString()}`,
    makeCredential: tpmMakeCredential(),
    appraise,
    registered: chain.nodes.get(n.signer.nodeId)
  })
  t.same(r.failed, [])
  t.equal(r.pass, true)
  t.equal(r.credentialActivated, true)
})

t.test('real TPM: certification round, one quote for three members, credentials activated', async t => {
  const before = quotes()
  const act = activations()
  const r = await runCertificationRound({ host: nodeHost, responder, chain })
  t.equal(r.outcome, 'pass')
  t.equal(r.pass, 3)
  t.equal(quotes() - before, 1, 'exactly one TPM quote')
  t.equal(
    activations() - act,
    3,
    'first certification: every member checks the AK–EK binding (ActivateCredential each)'
  )
  t.equal(chain.records.at(-1)?.outcome, 'pass')
})

t.test(
  'after the first certification a round costs one quote and no ActivateCredential, even before members new to the node',
  async t => {
    // a fresh committee: members that never met this node, so only the chain's record of the binding can spare the activation
    for (const m of members) chain.nodes.delete(m.nodeId)
    for (let i = 0; i < 3; i++) {
      const m = await nodeKey()
      const h = await createP2PHost({ privateKey: m.key })
      hosts.push(h)
      await new CommitteeMember({
        ...memberKeys(m.signer),
        chain,
        appraise,
        makeCredential: tpmMakeCredential()
      }).register(h)
      chain.register(m.signer.nodeId, {
        ekCertificate: new Uint8Array(1),
        akPublic: new Uint8Array(1),
        addrs: h.getMultiaddrs().map(a => a.toString()),
        publicKey: m.signer.publicKey
      })
    }
    t.ok(chain.bound.has(n.signer.nodeId), 'the chain recorded the binding with the first pass')
    const q0 = quotes()
    const a0 = activations()
    const r = await runCertificationRound({ host: nodeHost, responder, chain })
    t.equal(r.outcome, 'pass')
    t.notOk(
      r.committee.some(id => members.some(m => m.nodeId === id)),
      'none of the first committee'
    )
    t.equal(quotes() - q0, 1, 'one quote')
    t.equal(activations() - a0, 0, 'no ActivateCredential')
  }
)

t.test('real quote replayed for a fresh nonce / taken for another nonce: fail (freshness)', async t => {
  const { round } = await chain.requestAttestation(n.signer.nodeId)
  const myNonce = new Uint8Array(randomBytes(32))
  const registered = chain.nodes.get(n.signer.nodeId) as { ekCertificate: Uint8Array; akPublic: Uint8Array }
  const old = await responder.evidence([new Uint8Array(randomBytes(32))])
  const a = await members[0].judge(
    { nodeId: n.signer.nodeId, round, nonce: myNonce, registered, bindKey: 'k' },
    { evidence: old.bytes }
  )
  t.equal(a.verdict.outcome, 'fail')
  t.same(a.appraisal.failed, ['freshness'])
  const doctored = encodeEvidence({ ...old.evidence, committeeNonces: [myNonce], nonce: committeeNonce([myNonce]) })
  const b = await members[1].judge(
    { nodeId: n.signer.nodeId, round, nonce: myNonce, registered, bindKey: 'k' },
    { evidence: doctored }
  )
  t.same(b.appraisal.failed, ['freshness'])
  t.match(String((b.appraisal.detail as { error: string }).error), /another nonce/)
  // and the genuine answer passes
  const good = await responder.evidence([myNonce])
  const c = await members[2].judge(
    { nodeId: n.signer.nodeId, round, nonce: myNonce, registered, bindKey: 'k' },
    { evidence: good.bytes }
  )
  t.equal(c.appraisal.ok, true)
})

t.test('a credential for another TPM cannot be activated: identity fails', async t => {
  const other = await startSwtpm()
  const otherTpm = await openTpm({ tcti: other.tcti })
  try {
    const mk = tpmMakeCredential()
    // the member is told the node's cert but the EK public of another TPM: rejected before MakeCredential
    await t.rejects(
      mk({ ekCertificate: id.ekCertificate, ekPublic: await otherTpm.ekPublic(), akPublic: id.akPublic }),
      /EK/
    )
    // a credential made for the other TPM's EK does not activate on ours
    const cred = await mk({
      ekCertificate: (await otherTpm.ekCertificate()) as Uint8Array,
      ekPublic: await otherTpm.ekPublic(),
      akPublic: id.akPublic
    })
    await t.rejects(responder.activate(cred))
  } finally {
    await otherTpm.close()
    await other.stop()
  }
})

t.test(
  "the chain's fault appraiser re-judges real evidence: firmware against golden values, foreign AK fails everything",
  async t => {
    const { createFaultAppraiser } = await import('../../agent/p2p/index.ts')
    const nonce = new Uint8Array(randomBytes(32))
    const { evidence, bytes } = await responder.evidence([nonce])
    const pcrs = evidence.pcrs.sha256 ?? {}
    const golden = (shift: number): Record<string, { golden: Uint8Array[] }> =>
      Object.fromEntries(
        [0, 1, 2, 3, 5, 6, 7].map(i => [
          String(i),
          { golden: [shift === 0 ? pcrs[String(i)] : new Uint8Array(32).fill(shift)] }
        ])
      )
    const ekCas = sw.ekCaPems.map(p => new Uint8Array(new X509Certificate(p).raw))
    const fa = createFaultAppraiser({ policy: { requireEventLog: false } }) // this swtpm node sends no event log
    const registered = { ekCertificate: evidence.ekCertificate, akPublic: evidence.akPublic }
    const judge = (shift: number, reg = registered): readonly string[] =>
      fa.appraise({
        evidence: bytes,
        nodeId: n.signer.nodeId,
        registered: reg,
        refs: { ekCas, firmware: [{ name: 'swtpm/test', version: '1', bank: 'sha256', pcrs: golden(shift) }], os: [] },
        imageAllowed: () => false,
        time: Date.now()
      }).failedClaims
    t.notOk(judge(0).includes('firmware'), 'the PCRs it quoted are golden: firmware passes')
    t.ok(judge(9).includes('firmware'), 'other golden values: firmware fails')
    t.same(
      [...judge(0, { ...registered, akPublic: new Uint8Array(4) })].sort(),
      ['containers', 'firmware', 'freshness', 'identity', 'os'],
      'evidence from an AK the node did not register proves nothing'
    )
    t.same(
      [
        ...fa.appraise({
          evidence: new Uint8Array([1, 2, 3]),
          nodeId: 'x',
          registered,
          refs: { ekCas: [], firmware: [], os: [] },
          imageAllowed: () => false,
          time: 0
        }).failedClaims
      ].sort(),
      ['containers', 'firmware', 'freshness', 'identity', 'os'],
      'undecodable evidence fails every claim'
    )
  }
)
