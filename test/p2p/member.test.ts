// CommitteeMember.judge without a network: which claims a failing verdict names is decided by the
// error's class (MalformedEvidenceError → every claim, else the EvidenceBindingError's claim),
// never by the text of its message.
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { sha256 } from '../../encoding/bytes.ts'
import {
  CommitteeMember,
  AttestationResponder,
  EvidenceBindingError,
  MalformedEvidenceError,
  type Appraise
} from '../../agent/p2p/index.ts'
import { FakeTpm, FakeChain, fakeMakeCredential, fakeAppraise, nodeKey, memberKeys } from './fakes.ts'

const ALL = ['identity', 'firmware', 'os', 'containers', 'freshness']

async function setup(appraise: Appraise): Promise<{
  member: CommitteeMember
  judge: (
    evidence: Uint8Array,
    extra?: { credentialSecret?: Uint8Array; secret?: Uint8Array }
  ) => ReturnType<CommitteeMember['judge']>
  good: () => Promise<Uint8Array>
}> {
  const { signer } = await nodeKey()
  const member = new CommitteeMember({
    ...memberKeys(signer),
    chain: new FakeChain(4),
    appraise,
    makeCredential: fakeMakeCredential()
  })
  const tpm = new FakeTpm('node-a')
  const responder = new AttestationResponder({ tpm })
  const nonce = new Uint8Array(randomBytes(32))
  const registered = { ekCertificate: tpm.ekCert, akPublic: tpm.akPublic }
  let round = 0
  return {
    member,
    judge: async (evidence, extra = {}) =>
      await member.judge(
        {
          nodeId: 'node-a',
          round: ++round,
          nonce,
          registered,
          credentialSecret: extra.credentialSecret,
          bindKey: `k${round}`
        },
        { evidence, secret: extra.secret }
      ),
    good: async () => (await responder.evidence([nonce])).bytes
  }
}

t.test('MalformedEvidenceError is an EvidenceBindingError on freshness with its own code', async t => {
  const e = new MalformedEvidenceError(new Error('truncated'))
  t.ok(e instanceof EvidenceBindingError)
  t.equal(e.claim, 'freshness')
  t.equal(e.code, 'ERR_EVIDENCE_MALFORMED')
  t.equal(e.name, 'MalformedEvidenceError')
  t.match(e.message, /evidence is malformed: truncated/)
  t.equal((e.cause as Error).message, 'truncated')
})

t.test('undecodable evidence fails every claim', async t => {
  const s = await setup(fakeAppraise)
  for (const bytes of [new Uint8Array(0), new Uint8Array([0xa1, 0x61]), new Uint8Array(randomBytes(64))]) {
    const j = await s.judge(bytes)
    t.same(j.appraisal.failed, ALL)
    t.match((j.appraisal.detail as { error: string }).error, /^evidence is malformed: /)
    t.equal(j.verdict.outcome, 'fail')
    t.same(j.verdict.failedClaims, [...ALL].sort(), 'the signed verdict names every claim')
    t.same(j.verdict.evidenceDigest, sha256(bytes), 'and commits to the evidence as received')
  }
})

t.test('good evidence passes; identity failures fail identity only', async t => {
  const s = await setup(fakeAppraise)
  const ok = await s.judge(await s.good())
  t.equal(ok.appraisal.ok, true)
  const id = await s.judge(await s.good(), { credentialSecret: new Uint8Array(32).fill(1), secret: new Uint8Array(32) })
  t.same(id.appraisal.failed, ['identity'])
})

t.test('the message text does not decide: an error worded like a malformed one still fails only its claim', async t => {
  const worded = await setup(async () => {
    throw new EvidenceBindingError(
      'freshness',
      'evidence is malformed (says the appraiser, but it is a freshness failure)'
    )
  })
  t.same((await worded.judge(await worded.good())).appraisal.failed, ['freshness'])
  const typed = await setup(async () => {
    throw new MalformedEvidenceError(new Error('event log cut short'))
  })
  t.same((await typed.judge(await typed.good())).appraisal.failed, ALL, 'the class does')
  const ident = await setup(async () => {
    throw new EvidenceBindingError('identity', 'evidence is malformed, wrongly worded')
  })
  t.same((await ident.judge(await ident.good())).appraisal.failed, ['identity'])
})

t.test('a member keeps the evidence it judged and its verdict for the retention window, for fault proofs', async t => {
  const clock = { now: 1_000_000 }
  const { signer } = await nodeKey()
  const member = new CommitteeMember({
    ...memberKeys(signer),
    chain: new FakeChain(4),
    appraise: fakeAppraise,
    makeCredential: fakeMakeCredential(),
    retentionMs: 60_000,
    retentionMax: 2,
    now: () => clock.now
  })
  const tpm = new FakeTpm('node-b')
  const responder = new AttestationResponder({ tpm })
  const nonce = new Uint8Array(randomBytes(32))
  const registered = { ekCertificate: tpm.ekCert, akPublic: tpm.akPublic }
  const evidence = (await responder.evidence([nonce])).bytes
  const judge = async (round: number): Promise<void> => {
    await member.judge({ nodeId: 'node-b', round, nonce, registered, bindKey: 'k' }, { evidence })
  }
  await judge(1)
  const kept = member.judged('node-b', 1)
  t.same(kept?.evidence, evidence, 'the evidence as received')
  t.same(kept?.verdict.evidenceDigest, sha256(evidence), 'and the verdict that commits to it')
  await judge(2)
  await judge(3)
  t.equal(member.judged('node-b', 1), undefined, 'at most retentionMax rounds: the oldest goes first')
  t.ok(member.judged('node-b', 3) !== undefined)
  clock.now += 60_001
  t.equal(member.judged('node-b', 3), undefined, 'gone after the retention window')
})
