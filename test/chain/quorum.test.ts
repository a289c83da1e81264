// The chain with the real quorum rules (attestation/quorum, injected as in production): BLS keys
// registered with a proof of possession, the committee the chain draws and keeps, member verdicts
// aggregated into a QC v3 that the chain checks; the test double's committee sizes equal the real ones.
import t from 'tap'
import { makeChain, fakeDer, type Harness } from './harness.ts'
import { generateChainKey, type ChainKey } from '../../chain/keys.ts'
import { testOnlyCommitteeSize } from '../../chain/testing.ts'
import { TxCode, type NodeView, type SeedView } from '../../chain/types.ts'
import {
  createQuorumRules,
  committeeSizeWith,
  blsKeyFromSeed,
  proveKeyPossession,
  signMemberVerdict,
  CertificateCollector,
  encodeCertificate,
  decodeCertificate,
  type BlsSigner
} from '../../attestation/quorum/index.ts'
import { decode, encode } from '../../encoding/canonical.ts'

interface Verifier {
  key: ChainKey
  bls: BlsSigner
}
const q = <T>(h: Harness, path: string, params: Record<string, unknown>): T =>
  decode(h.app.query({ path, data: encode(params as never) }).value!) as T

async function verifier(i: number): Promise<Verifier> {
  return { key: await generateChainKey(), bls: blsKeyFromSeed(new Uint8Array(32).fill(i + 1)) }
}

function register(h: Harness, v: Verifier, i: number, proof?: Uint8Array): number {
  return h.run(
    'node.register',
    {
      nodeId: v.key.peerId,
      ekCertificate: fakeDer(i),
      akPublic: new Uint8Array([i]),
      addrs: [],
      blsPublicKey: v.bls.publicKey,
      blsProof: proof ?? proveKeyPossession(v.bls, v.key.peerId)
    },
    v.key
  ).code
}

t.test(
  'attest.record with a real QC v3: BLS keys with proofs of possession, the kept committee, a member records',
  async t => {
    const verifiers = await Promise.all([0, 1, 2, 3, 4].map(verifier))
    const h = await makeChain({ verifiers: verifiers.map(v => v.key), rules: createQuorumRules() })
    // a proof of possession made for another node id is refused (rogue-key defence)
    const stolen = register(h, verifiers[0], 0, proveKeyPossession(verifiers[0].bls, verifiers[1].key.peerId))
    t.equal(stolen, TxCode.UNAUTHORIZED, 'a PoP bound to another node id is refused')
    for (const [i, v] of verifiers.entries()) t.equal(register(h, v, i), 0)
    const node = await verifier(9)
    t.equal(register(h, node, 9), 0)
    t.equal(h.run('attest.request', { nodeId: node.key.peerId, round: 1 }, node.key).code, 0)
    h.block([])
    const seed = q<SeedView>(h, '/seed', { nodeId: node.key.peerId })
    t.equal(seed.status, 'ready')
    // current rules: k = min(size for F = 1/5 at 40 bits, candidates) = all 5 verifiers
    t.equal(seed.candidateCount, 5)
    t.equal(seed.committee?.length, 5, 'the chain draws every candidate when there are fewer than the level needs')
    t.ok(
      seed.securityBits !== undefined && seed.securityBits < 40,
      `the level reached is recorded (${seed.securityBits} bits)`
    )
    const committee = seed.committee!
    const byId = new Map(verifiers.map(v => [v.key.peerId, v]))
    const collector = new CertificateCollector({
      chainId: h.genesis.chainId,
      nodeId: node.key.peerId,
      round: 1,
      committee: committee.map(id => ({ nodeId: id, blsPublicKey: byId.get(id)!.bls.publicKey }))
    })
    const message = {
      chainId: h.genesis.chainId,
      nodeId: node.key.peerId,
      round: 1,
      outcome: 'pass' as const,
      evidenceDigest: new Uint8Array(32).fill(7),
      failedClaims: []
    }
    for (const id of committee.slice(0, collector.threshold - 1))
      collector.add(signMemberVerdict(message, id, byId.get(id)!.bls))
    t.equal(collector.outcome(), undefined, 'one short of the threshold')
    // a QC whose bitmap claims one signer more than the aggregate holds is refused, nothing changes
    collector.add(
      signMemberVerdict(message, committee[collector.threshold - 1], byId.get(committee[collector.threshold - 1])!.bls)
    )
    const cert = collector.certificate()
    const qc3 = decodeCertificate(cert.qc)
    const forged = encodeCertificate({
      ...qc3,
      signers: qc3.signers
        .map((b, i) => (i === 0 ? b | 0xff : b))
        .map((b, i, a) =>
          i === a.length - 1 ? b & ((1 << (committee.length % 8 || 8)) - 1) : b
        ) as unknown as Uint8Array
    })
    const before = h.app.info().appHash
    const refused = h.run('attest.record', { nodeId: node.key.peerId, round: 1, qc: forged }, node.key)
    t.equal(refused.code, TxCode.QC_REJECTED, 'a signer bitmap the aggregate does not match is refused')
    t.match(refused.log, /quorum certificate rejected/)
    t.same(h.app.info().appHash, before, 'a refused QC changes nothing')
    t.ok(cert.qc.length < 400, `QC v3 of ${cert.qc.length} bytes`)
    // any committee member may record the QC (here the first), not only the node
    const member = byId.get(committee[0])!
    const ok = h.run('attest.record', { nodeId: node.key.peerId, round: 1, qc: cert.qc }, member.key)
    t.equal(ok.code, 0, ok.log)
    const view = q<NodeView>(h, '/node', { nodeId: node.key.peerId })
    t.equal(view.effective, 'certified')
    t.equal(
      view.record?.expiresAt,
      h.clock.now + 24 * 3600_000,
      'the chain sets the expiry (genesis certTtlMs); a QC v3 carries none'
    )
    t.same(view.record?.committee, committee, 'the committee the chain kept')
    t.equal(
      view.record?.securityBits,
      seed.securityBits,
      'the certification records the security level its committee reached'
    )
    t.same(view.record?.akBound, { round: 1, height: h.app.info().height }, 'the first pass records the AK–EK binding')
  }
)

t.test('the test double sizes committees exactly as attestation/quorum does', async t => {
  for (const [num, den, bits] of [
    [1, 5, 40],
    [1, 10, 40],
    [1, 4, 30],
    [1, 5, 20],
    [3, 10, 10]
  ]) {
    for (const n of [0, 3, 10, 47, 48, 200]) {
      const m = { fractionNum: num, fractionDen: den, securityBits: bits }
      t.same(testOnlyCommitteeSize(m, n), committeeSizeWith(m, n), `F = ${num}/${den}, ${bits} bits, ${n} candidates`)
    }
  }
})
