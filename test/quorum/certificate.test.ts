import t from 'tap'
import {
  ed25519Signer, selectCommittee, signVerdict, encodeQuorumCertificate, decodeQuorumCertificate, decodeVerdict,
  verifyQuorumCertificate, createQuorumRules, QuorumCollector, threshold, faultTolerance, publicKeyFromNodeId,
  encodeVerdict, verdictSigningBytes,
  NotCommitteeMemberError, DuplicateVerdictError, BadVerdictSignatureError, WrongSubjectError, ExpiredVerdictError,
  BelowThresholdError, CandidateKeyMismatchError, type SignedVerdict, type VerdictSigner
} from '../../attestation/quorum/index.ts'
import { sha256, utf8 } from '../../encoding/bytes.ts'
import { encode } from '../../encoding/canonical.ts'
import { DecodeError, InvalidInputError, TooLargeError } from '../../encoding/errors.ts'

const signers: VerdictSigner[] = Array.from({ length: 12 }, (_, i) => ed25519Signer(sha256(utf8.encode(`member key ${i}`))))
const node = ed25519Signer(sha256(utf8.encode('node key')))
const byId = new Map(signers.map(s => [s.nodeId, s]))
const candidates = [...signers, node].map(s => ({ nodeId: s.nodeId, publicKey: s.publicKey }))
const seed = sha256(utf8.encode('round seed'))
const round = 3
const now = 1_800_000_000_000
const k = 7
const committee = selectCommittee(seed, candidates.filter(c => c.nodeId !== node.nodeId).map(c => c.nodeId), k)
const outsiders = signers.filter(s => !committee.includes(s.nodeId))
const digest = sha256(utf8.encode('appraisal'))

function verdict (s: VerdictSigner, pass: boolean, o: { nodeId?: string, round?: number, expiresAt?: number } = {}): SignedVerdict {
  return signVerdict({ nodeId: o.nodeId ?? node.nodeId, round: o.round ?? round, pass, appraisalDigest: digest, failed: pass ? [] : ['firmware'], expiresAt: o.expiresAt ?? now + 3600_000 }, s)
}
const member = (i: number): VerdictSigner => byId.get(committee[i]) as VerdictSigner
const qcOf = (vs: SignedVerdict[]): Uint8Array => encodeQuorumCertificate({ nodeId: node.nodeId, round, verdicts: vs })
// a v2 QC built by hand, bypassing the encoder's checks (what a malicious node could submit)
type Entry = { m: string, p: boolean, d: Uint8Array, f: string[], e: number, s: Uint8Array }
const entryOf = (sv: SignedVerdict): Entry => {
  const v = decodeVerdict(sv.verdict)
  return { m: v.member, p: v.pass, d: v.appraisalDigest, f: [...v.failed], e: v.expiresAt, s: sv.signature }
}
const rawQc = (entries: Entry[], o: { nodeId?: string, round?: number } = {}): Uint8Array =>
  encode({ v: 2, nodeId: o.nodeId ?? node.nodeId, round: o.round ?? round, verdicts: entries })
const verify = (qc: Uint8Array, extra: Partial<Parameters<typeof verifyQuorumCertificate>[0]> = {}) =>
  verifyQuorumCertificate({ qc, nodeId: node.nodeId, round, seed, candidates, now, k, ...extra })

t.test('setup sanity', async t => {
  t.equal(committee.length, 7)
  t.notOk(committee.includes(node.nodeId), 'node excluded')
  t.same(publicKeyFromNodeId(node.nodeId), node.publicKey, 'node id embeds the key')
  const v = decodeVerdict(verdict(member(0), true).verdict)
  t.equal(v.member, committee[0])
})

t.test('valid QC: pass with exactly threshold verdicts', async t => {
  const vs = [0, 1, 2, 3, 4].map(i => verdict(member(i), true, { expiresAt: now + 1000 * (i + 1) }))
  const r = verify(qcOf(vs))
  t.equal(r.outcome, 'pass')
  t.equal(r.expiresAt, now + 1000, 'min expiry of the counted side')
  t.same(r.committee, committee)
  t.equal(r.threshold, 5)
  // through the chain-facing rules object, which still takes the legacy input until agent/p2p moves to v3
  const rules = createQuorumRules({ k })
  const legacyInput = { qc: qcOf(vs), nodeId: node.nodeId, round, seed, candidates, now } as unknown as Parameters<typeof rules.verifyCertificate>[0]
  t.same(rules.verifyCertificate(legacyInput), { outcome: 'pass', expiresAt: now + 1000, committee })
})

t.test('valid QC: fail outcome; minority verdicts allowed but all must be valid', async t => {
  const vs = [0, 1, 2, 3, 4].map(i => verdict(member(i), false))
  vs.push(verdict(member(5), true))
  const r = verify(qcOf(vs))
  t.equal(r.outcome, 'fail')
  t.same(r.passed, [committee[5]])
})

t.test('rejections', async t => {
  const good = [0, 1, 2, 3, 4].map(i => verdict(member(i), true))
  t.throws(() => verify(qcOf([...good.slice(0, 4), verdict(outsiders[0], true)])), NotCommitteeMemberError, 'non-member')
  t.throws(() => verify(qcOf([...good.slice(0, 4), verdict(node, true)])), NotCommitteeMemberError, 'the node itself')
  t.throws(() => verify(qcOf([...good, good[0]])), DuplicateVerdictError, 'duplicated signature')
  t.throws(() => verify(qcOf([...good, verdict(member(0), false)])), DuplicateVerdictError, 'same member twice, different verdicts')
  const forged = { verdict: good[4].verdict, signature: good[3].signature }
  t.throws(() => verify(qcOf([...good.slice(0, 4), forged])), BadVerdictSignatureError, 'forged signature')
  const flipped = new Uint8Array(good[4].signature); flipped[10] ^= 1
  t.throws(() => verify(qcOf([...good.slice(0, 4), { verdict: good[4].verdict, signature: flipped }])), BadVerdictSignatureError)
  // a member signing a verdict that claims another member's name
  const impostor = encodeVerdict({ v: 1, nodeId: node.nodeId, round, member: committee[4], pass: true, appraisalDigest: digest, failed: [], expiresAt: now + 1000 })
  t.throws(() => verify(qcOf([...good.slice(0, 4), { verdict: impostor, signature: member(5).sign(verdictSigningBytes(impostor)) }])), BadVerdictSignatureError, 'impostor')
  // signature without the domain prefix does not verify
  const raw = good[4].verdict
  t.throws(() => verify(qcOf([...good.slice(0, 4), { verdict: raw, signature: member(4).sign(raw) }])), BadVerdictSignatureError, 'no domain prefix')
  // a verdict about another round or node: the encoder refuses it; smuggled into a hand-built QC,
  // the verifier rebuilds the verdict with the QC's node and round and its signature fails
  const otherRound = verdict(member(4), true, { round: round + 1 })
  const otherNode = verdict(member(4), true, { nodeId: outsiders[1].nodeId })
  t.throws(() => qcOf([...good.slice(0, 4), otherRound]), WrongSubjectError, 'encoder: wrong round')
  t.throws(() => qcOf([...good.slice(0, 4), otherNode]), WrongSubjectError, 'encoder: wrong node')
  t.ok(verify(rawQc(good.map(entryOf))).outcome === 'pass', 'hand-built QC of good verdicts verifies')
  t.throws(() => verify(rawQc([...good.slice(0, 4), otherRound].map(entryOf))), BadVerdictSignatureError, 'wrong round')
  t.throws(() => verify(rawQc([...good.slice(0, 4), otherNode].map(entryOf))), BadVerdictSignatureError, 'wrong node')
  t.throws(() => verify(rawQc(good.map(entryOf), { round: round + 1 }), { round: round + 1 }), BadVerdictSignatureError, 'whole QC relabelled to another round')
  // a changed field under a valid signature: outcome, digest, expiry, claims, member
  const e4 = entryOf(good[4])
  const tampered: [string, Entry][] = [
    ['pass flipped', { ...e4, p: false, f: ['firmware'] }],
    ['digest changed', { ...e4, d: sha256(e4.d) }],
    ['expiry extended', { ...e4, e: e4.e + 1 }],
    ['member swapped', { ...e4, m: committee[5] }]
  ]
  for (const [what, e] of tampered) t.throws(() => verify(rawQc([...good.slice(0, 4).map(entryOf), e])), BadVerdictSignatureError, what)
  t.throws(() => verify(qcOf(good), { round: round + 1 }), WrongSubjectError, 'QC for another round')
  t.throws(() => verify(qcOf(good), { nodeId: outsiders[0].nodeId }), WrongSubjectError, 'QC for another node')
  t.throws(() => verify(qcOf([...good.slice(0, 4), verdict(member(4), true, { expiresAt: now })])), ExpiredVerdictError, 'expired (min expiry = now)')
  t.throws(() => verify(qcOf(good.slice(0, 4))), BelowThresholdError, 'below threshold')
  t.throws(() => verify(qcOf([...good.slice(0, 3), verdict(member(3), false), verdict(member(4), false)])), BelowThresholdError, 'split')
  t.throws(() => verify(qcOf(good), { seed: sha256(seed) }), NotCommitteeMemberError, 'another seed → another committee')
  t.throws(() => verify(qcOf(good), { candidates: [] }), BelowThresholdError, 'no candidates')
  const badCands = candidates.map(c => c.nodeId === committee[0] ? { nodeId: c.nodeId, publicKey: node.publicKey } : c)
  t.throws(() => verify(qcOf(good), { candidates: badCands }), CandidateKeyMismatchError)
  const eight = [0, 1, 2, 3, 4, 5, 6].map(i => verdict(member(i), true))
  eight.push(verdict(outsiders[0], true))
  t.throws(() => verify(qcOf(eight)), InvalidInputError, 'more verdicts than members')
})

t.test('strict decoding and size limits', async t => {
  const good = [0, 1, 2, 3, 4].map(i => verdict(member(i), true))
  const qc = qcOf(good)
  t.same(encodeQuorumCertificate(decodeQuorumCertificate(qc)), qc, 'round trip')
  const decoded = decodeQuorumCertificate(qc)
  t.equal(decoded.v, 2)
  t.same(decoded.verdicts.map(sv => [...sv.verdict]), good.map(g => [...g.verdict]), 'verdict bytes rebuilt exactly as the members signed them')
  t.same(decoded.verdicts.map(sv => [...sv.signature]), good.map(g => [...g.signature]))
  t.same(decoded.entries.map(e => e.verdict.member), committee.slice(0, 5))
  t.same(rawQc(good.map(entryOf)), qc, 'the documented layout')
  const v1 = encode({ v: 1, nodeId: node.nodeId, round, verdicts: good.map(g => ({ verdict: g.verdict, signature: g.signature })) })
  t.throws(() => verify(v1), DecodeError, 'QC v1 is not accepted')
  t.throws(() => verify(encode({ v: 2, nodeId: node.nodeId, round, verdicts: good.map(entryOf), extra: 1 })), DecodeError, 'unknown QC field')
  t.throws(() => verify(rawQc([...good.slice(0, 4).map(entryOf), { ...entryOf(good[4]), x: 1 } as Entry])), DecodeError, 'unknown entry field')
  t.throws(() => verify(rawQc([...good.slice(0, 4).map(entryOf), { ...entryOf(good[4]), s: new Uint8Array(63) }])), DecodeError, 'short signature')
  t.throws(() => verify(rawQc([...good.slice(0, 4).map(entryOf), { ...entryOf(good[4]), f: ['firmware'] }])), DecodeError, 'pass with failed claims')
  t.throws(() => verify(encode({ v: 2, nodeId: node.nodeId, round, verdicts: [] })), DecodeError)
  t.throws(() => verify(new Uint8Array(200_000)), TooLargeError)
  t.throws(() => verify(qc.subarray(0, qc.length - 1)), DecodeError, 'truncated')
  t.throws(() => verify(new Uint8Array([...qc, 0])), DecodeError, 'trailing byte')
  const badVerdict = encode({ v: 1, nodeId: node.nodeId, round, member: committee[0], pass: true, appraisalDigest: new Uint8Array(31), failed: [], expiresAt: now + 1 })
  t.throws(() => qcOf([...good.slice(0, 4), { verdict: badVerdict, signature: member(0).sign(verdictSigningBytes(badVerdict)) }]), DecodeError, 'encoder: short digest')
  t.throws(() => verify(rawQc([...good.slice(0, 4).map(entryOf), { ...entryOf(good[4]), d: new Uint8Array(31) }])), DecodeError, 'short digest')
  // bounded fuzz: random mutations never crash with anything but an InvalidInputError, never hang
  let rejected = 0
  let x = 12345
  const rnd = (n: number): number => { x = (x * 1103515245 + 12345) & 0x7fffffff; return x % n }
  for (let i = 0; i < 2000; i++) {
    const m = new Uint8Array(qc)
    const edits = 1 + rnd(4)
    for (let e = 0; e < edits; e++) m[rnd(m.length)] = rnd(256)
    const input = rnd(10) === 0 ? m.subarray(0, rnd(m.length)) : m
    try { verify(input) } catch (err) {
      if (!(err instanceof InvalidInputError)) throw err
      rejected++
    }
  }
  t.ok(rejected > 1900, `${rejected} of 2000 mutations rejected (the rest hit unsigned bytes that do not matter)`)
})

t.test('f liars do not change the outcome', async t => {
  const f = faultTolerance(k)
  const q = threshold(k)
  t.equal(f, 2)
  for (const behaviour of ['always-pass', 'always-fail', 'silent'] as const) {
    for (const honestPass of [true, false]) {
      const c = new QuorumCollector({ nodeId: node.nodeId, round, committee })
      for (let i = 0; i < k; i++) {
        const liar = i < f
        if (liar && behaviour === 'silent') continue
        const pass = liar ? behaviour === 'always-pass' : honestPass
        c.add(verdict(member(i), pass), now)
      }
      t.equal(c.outcome(), honestPass ? 'pass' : 'fail', `${behaviour} liars, honest say ${honestPass ? 'pass' : 'fail'}`)
      const cert = c.certificate()
      t.equal(decodeQuorumCertificate(cert.qc).verdicts.length, q, 'minimal QC')
      t.equal(verify(cert.qc).outcome, cert.outcome)
    }
  }
})

t.test('collector', async t => {
  const c = new QuorumCollector({ nodeId: node.nodeId, round, committee })
  t.equal(c.outcome(), undefined)
  t.throws(() => c.certificate(), BelowThresholdError)
  t.throws(() => c.add(verdict(outsiders[0], true), now), NotCommitteeMemberError)
  t.throws(() => c.add(verdict(member(0), true, { expiresAt: now - 1 }), now), ExpiredVerdictError)
  c.add(verdict(member(0), true), now)
  t.throws(() => c.add(verdict(member(0), true), now), DuplicateVerdictError)
  t.same(c.counts, { pass: 1, fail: 0 })
  c.add(verdict(member(1), false), now)
  c.add(verdict(member(2), false), now)
  t.notOk(c.undecidable())
  c.add(verdict(member(3), true), now)
  c.add(verdict(member(4), false), now)
  t.notOk(c.undecidable(), '2 pass, 3 fail, 2 left: fail can still reach 5')
  c.add(verdict(member(5), true), now)
  t.ok(c.undecidable(), '3 pass, 3 fail, 1 left: neither side can reach 5')
})

t.test('compact: one attest.record-sized QC at k = 10 stays under 2 KB', async t => {
  const big = Array.from({ length: 10 }, (_, i) => ed25519Signer(sha256(utf8.encode(`k10 member ${i}`))))
  const cands = [...big, node].map(s => ({ nodeId: s.nodeId, publicKey: s.publicKey }))
  const com = selectCommittee(seed, big.map(s => s.nodeId), 10)
  const bySigner = new Map(big.map(s => [s.nodeId, s]))
  const c = new QuorumCollector({ nodeId: node.nodeId, round, committee: com })
  // worst realistic case: failing verdicts naming every claim
  for (const id of com) c.add(signVerdict({ nodeId: node.nodeId, round, pass: false, appraisalDigest: digest, failed: ['identity', 'firmware', 'os', 'containers', 'freshness'], expiresAt: now + 1 }, bySigner.get(id) as VerdictSigner), now)
  const { qc } = c.certificate()
  t.equal(decodeQuorumCertificate(qc).entries.length, threshold(10))
  t.ok(qc.length < 1800, `QC of ${qc.length} bytes (v1 was about 2,280 for passing verdicts)`)
  t.equal(verifyQuorumCertificate({ qc, nodeId: node.nodeId, round, seed, candidates: cands, now, k: 10 }).outcome, 'fail')
})

t.test('collector: verdict bytes must be canonical', async t => {
  const c = new QuorumCollector({ nodeId: node.nodeId, round, committee })
  const sv = verdict(member(0), true)
  // same verdict, one byte appended: strict decoding refuses it before any signature check
  t.throws(() => c.add({ verdict: new Uint8Array([...sv.verdict, 0]), signature: sv.signature }, now), DecodeError)
  t.same(c.counts, { pass: 0, fail: 0 }, 'nothing recorded')
  c.add(sv, now)
  t.same(c.counts, { pass: 1, fail: 0 })
})
