// The chain with the real quorum rules (attestation/quorum, injected as in production): the seed,
// candidate snapshot and committee the chain derives agree with what members and the node use.
import t from 'tap'
import { makeChain, fakeDer } from './harness.ts'
import { generateChainKey, type ChainKey } from '../../chain/keys.ts'
import { TxCode, type NodeView, type SeedView } from '../../chain/types.ts'
import { createQuorumRules, selectCommittee, signVerdict, encodeQuorumCertificate, threshold } from '../../attestation/quorum/index.ts'
import { decode, encode } from '../../encoding/canonical.ts'

const signer = (k: ChainKey) => ({ nodeId: k.peerId, publicKey: k.publicKey, sign: (m: Uint8Array) => k.sign(m) })

t.test('attest.record with a real quorum certificate', async t => {
  const verifiers = await Promise.all([0, 1, 2, 3, 4].map(async () => await generateChainKey()))
  const h = await makeChain({ verifiers, rules: createQuorumRules({ k: 4 }) })
  const node = await generateChainKey()
  t.equal(h.run('node.register', { nodeId: node.peerId, ekCertificate: fakeDer(1), akPublic: new Uint8Array([1]), addrs: [] }, node).code, 0)
  t.equal(h.run('attest.request', { nodeId: node.peerId, round: 1 }, node).code, 0)
  h.block([])
  const r = h.app.query({ path: '/seed', data: encode({ nodeId: node.peerId }) })
  const seed = decode(r.value!) as unknown as SeedView
  t.equal(seed.status, 'ready')
  const candidates = seed.candidates!.map(c => c.nodeId)
  // current rules: k = min(size for F = 1/5 at 40 bits, candidates) = all 5 verifiers, fixed with the seed
  t.equal(seed.k, 5, 'the chain draws every candidate when there are fewer than the level needs')
  t.ok(seed.securityBits !== undefined && seed.securityBits < 40, `the level reached is recorded (${seed.securityBits} bits)`)
  const k = seed.k!
  const committee = selectCommittee(seed.seed!, candidates, k)
  const byId = new Map(verifiers.map(v => [v.peerId, v]))
  const expiresAt = h.clock.now + 3_600_000
  const verdicts = committee.slice(0, threshold(k)).map(id => signVerdict({ nodeId: node.peerId, round: 1, pass: true, appraisalDigest: new Uint8Array(32), failed: [], expiresAt }, signer(byId.get(id)!)))
  // a QC missing one verdict is below threshold: refused, nothing changes
  const short = encodeQuorumCertificate({ nodeId: node.peerId, round: 1, verdicts: verdicts.slice(1) })
  const refused = h.run('attest.record', { nodeId: node.peerId, round: 1, qc: short }, node)
  t.equal(refused.code, TxCode.QC_REJECTED)
  t.match(refused.log, /quorum certificate rejected/)
  // a verdict from a non-member is refused
  const outsider = await generateChainKey()
  const forged = encodeQuorumCertificate({ nodeId: node.peerId, round: 1, verdicts: [...verdicts.slice(1), signVerdict({ nodeId: node.peerId, round: 1, pass: true, appraisalDigest: new Uint8Array(32), failed: [], expiresAt }, signer(outsider))] })
  t.equal(h.run('attest.record', { nodeId: node.peerId, round: 1, qc: forged }, node).code, TxCode.QC_REJECTED, 'non-member verdict refused')
  const qc = encodeQuorumCertificate({ nodeId: node.peerId, round: 1, verdicts })
  const ok = h.run('attest.record', { nodeId: node.peerId, round: 1, qc }, node)
  t.equal(ok.code, 0, ok.log)
  const view = decode(h.app.query({ path: '/node', data: encode({ nodeId: node.peerId }) }).value!) as unknown as NodeView
  t.equal(view.effective, 'certified')
  t.equal(view.record?.expiresAt, expiresAt)
  t.same([...(view.record?.committee ?? [])].sort(), [...committee].sort(), 'the chain re-derived the same committee')
  t.equal(view.record?.securityBits, seed.securityBits, 'the certification records the security level its committee reached')
})
