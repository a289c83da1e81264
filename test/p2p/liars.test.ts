// f liars over the wire (k = 4, f = 1): a member that always passes, one that always fails, or
// one that never answers does not change the outcome the honest members reach.
import t from 'tap'
import {
  createP2PHost,
  AttestationResponder,
  CommitteeMember,
  runCertificationRound,
  PROTOCOL_CERTIFY,
  type Appraise,
  type P2PHost
} from '../../agent/p2p/index.ts'
import { faultTolerance } from '../../attestation/quorum/index.ts'
import { sha256 } from '../../encoding/bytes.ts'
import { encode } from '../../encoding/canonical.ts'
import { FakeTpm, FakeChain, fakeMakeCredential, fakeAppraise, nodeKey, memberKeys } from './fakes.ts'

const K = 4
t.equal(faultTolerance(K), 1)
const hosts: P2PHost[] = []
t.teardown(async () => {
  await Promise.all(
    hosts.map(async h => {
      await h.stop()
    })
  )
})

const always =
  (ok: boolean): Appraise =>
  async e => ({ ok, failed: ok ? [] : ['firmware'], digest: sha256(encode({ ok, n: e.nonce })) })

async function setup(
  liar: 'always-pass' | 'always-fail' | 'silent',
  nodePcr0: Uint8Array
): Promise<{ chain: FakeChain; host: P2PHost; responder: AttestationResponder }> {
  const chain = new FakeChain(K)
  const makeCred = fakeMakeCredential()
  for (let i = 0; i < K; i++) {
    const { key, signer } = await nodeKey()
    const h = await createP2PHost({ privateKey: key })
    hosts.push(h)
    if (i === 0 && liar === 'silent') await h.handle(PROTOCOL_CERTIFY, () => {})
    else {
      const appraise = i === 0 ? always(liar === 'always-pass') : fakeAppraise
      await new CommitteeMember({ ...memberKeys(signer), chain, appraise, makeCredential: makeCred }).register(h)
    }
    chain.register(signer.nodeId, {
      ekCertificate: new Uint8Array(1),
      akPublic: new Uint8Array(1),
      addrs: h.getMultiaddrs().map(a => a.toString()),
      publicKey: signer.publicKey
    })
  }
  const { key, signer } = await nodeKey()
  const host = await createP2PHost({ privateKey: key })
  hosts.push(host)
  const tpm = new FakeTpm(signer.nodeId, nodePcr0)
  chain.register(signer.nodeId, {
    ekCertificate: tpm.ekCert,
    akPublic: tpm.akPublic,
    addrs: [],
    publicKey: signer.publicKey
  })
  return { chain, host, responder: new AttestationResponder({ tpm }) }
}

const good = new Uint8Array(32)
const bad = new Uint8Array(32).fill(9)
for (const liar of ['always-pass', 'always-fail', 'silent'] as const) {
  for (const [label, pcr0, expected] of [
    ['good node', good, 'pass'],
    ['bad node', bad, 'fail']
  ] as const) {
    t.test(`${liar} liar, ${label} → ${expected}`, async t => {
      const s = await setup(liar, pcr0)
      const r = await runCertificationRound({
        host: s.host,
        responder: s.responder,
        chain: s.chain,
        challengeTimeoutMs: 5000,
        challengeGraceMs: 200
      })
      t.equal(r.outcome, expected)
      t.equal(s.chain.records.at(-1)?.outcome, expected, 'the chain agrees')
    })
  }
}
