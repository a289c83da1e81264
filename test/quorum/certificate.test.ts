// QC v3: BLS verdicts, aggregate certificates with a signer bitmap, single-verdict checks.
import t from 'tap'
import {
  ed25519Signer,
  blsKeyFromSeed,
  drawCommittee,
  signMemberVerdict,
  encodeMemberVerdict,
  decodeMemberVerdict,
  encodeCertificate,
  decodeCertificate,
  verifyCertificate,
  verifyMemberVerdict,
  CertificateCollector,
  createQuorumRules,
  signerBitmap,
  bitmapIndices,
  blsAggregate,
  threshold,
  normalizeClaims,
  verdictMessageSigningBytes,
  proveKeyPossession,
  DEFAULT_ADVERSARY_MODEL,
  NotCommitteeMemberError,
  DuplicateVerdictError,
  BadVerdictSignatureError,
  WrongSubjectError,
  BelowThresholdError,
  CandidateKeyMismatchError,
  BadSignerBitmapError,
  BadPossessionProofError,
  QUORUM_LIMITS,
  type BlsSigner,
  type MemberVerdict,
  type VerdictMessage,
  type CommitteeInput
} from '../../attestation/quorum/index.ts'
import { sha256, utf8 } from '../../encoding/bytes.ts'
import { encode } from '../../encoding/canonical.ts'
import { DecodeError, InvalidInputError, TooLargeError } from '../../encoding/errors.ts'

interface Member {
  nodeId: string
  bls: BlsSigner
}
const pool: Member[] = Array.from({ length: 60 }, (_, i) => ({
  nodeId: ed25519Signer(sha256(utf8.encode(`v3 member ${i}`))).nodeId,
  bls: blsKeyFromSeed(sha256(utf8.encode(`v3 bls ${i}`)))
}))
const byId = new Map(pool.map(m => [m.nodeId, m]))
const node = ed25519Signer(sha256(utf8.encode('v3 node'))).nodeId
const candidates = [
  ...pool.map(m => ({ nodeId: m.nodeId, blsPublicKey: m.bls.publicKey })),
  { nodeId: node, blsPublicKey: blsKeyFromSeed(sha256(utf8.encode('v3 node bls'))).publicKey }
]
const chainId = 'quorate-test'
const seed = sha256(utf8.encode('v3 round seed'))
const round = 9
const k = 48
const committee = drawCommittee({ seed, nodeId: node, candidates: candidates.map(c => c.nodeId), k })
const need = threshold(k)
const outsiders = pool.filter(m => !committee.includes(m.nodeId))
const member = (i: number): Member => byId.get(committee[i]) as Member
const digest = sha256(utf8.encode('evidence bundle'))
const base: CommitteeInput = { chainId, nodeId: node, round, seed, candidates, k }

const passMsg: VerdictMessage = {
  chainId,
  nodeId: node,
  round,
  outcome: 'pass',
  evidenceDigest: digest,
  failedClaims: []
}
const failMsg: VerdictMessage = { ...passMsg, outcome: 'fail', failedClaims: ['containers', 'firmware'] }
const sign = (m: Member, msg: VerdictMessage = passMsg): MemberVerdict => signMemberVerdict(msg, m.nodeId, m.bls)
/** A QC built by hand from committee positions (what a malicious submitter controls). */
function qcFrom(
  positions: number[],
  o: { msg?: VerdictMessage; bitmap?: Uint8Array; sigs?: Uint8Array[] } = {}
): Uint8Array {
  const msg = o.msg ?? passMsg
  const sigs = o.sigs ?? positions.map(i => member(i).bls.sign(verdictMessageSigningBytes(msg)))
  return encodeCertificate({
    outcome: msg.outcome,
    evidenceDigest: msg.evidenceDigest,
    failedClaims: [...msg.failedClaims].sort(),
    signers: o.bitmap ?? signerBitmap(k, positions),
    signature: blsAggregate(sigs)
  })
}
const range = (n: number, from = 0): number[] => Array.from({ length: n }, (_, i) => from + i)

t.test('setup: 60 candidates, k = 48, threshold 33, the node excluded', async t => {
  t.equal(committee.length, 48)
  t.equal(need, 33)
  t.notOk(committee.includes(node))
  t.equal(outsiders.length, 12)
})

t.test('a valid QC at exactly the threshold, directly and through the rules object', async t => {
  const qc = qcFrom(range(need))
  t.ok(qc.length <= 1024, `QC of ${qc.length} bytes`)
  const r = verifyCertificate({ ...base, qc })
  t.equal(r.outcome, 'pass')
  t.same(r.signers, committee.slice(0, need))
  t.same(r.committee, committee)
  t.equal(r.threshold, need)
  t.same(r.evidenceDigest, digest)
  t.same(verifyCertificate({ ...base, qc, committee }), r, 'with the kept committee: same answer, no re-draw')
  t.throws(
    () => verifyCertificate({ ...base, qc, committee: [committee[0], ...committee.slice(0, 47)] }),
    InvalidInputError,
    'a kept committee naming a member twice'
  )
  t.throws(
    () => verifyCertificate({ ...base, qc, committee, k: 40 }),
    InvalidInputError,
    'a kept committee larger than k'
  )
  const rules = createQuorumRules()
  t.same(rules.verifyCertificate({ ...base, qc }), r)
  t.same(rules.committeeSize(DEFAULT_ADVERSARY_MODEL, 59), { k: 48, target: 48, securityBits: 41 })
  t.same(rules.drawCommittee({ seed, nodeId: node, candidates: candidates.map(c => c.nodeId), k }), committee)
  // every signer, scattered positions, fail outcome with claims
  const all = verifyCertificate({
    ...base,
    qc: qcFrom(
      range(k).filter(i => i % 3 !== 1 || i > 40),
      { msg: failMsg }
    )
  })
  t.equal(all.outcome, 'fail')
  t.same(all.failedClaims, ['containers', 'firmware'])
})

t.test('forged or wrong aggregates are refused', async t => {
  const sigs = range(need).map(i => member(i).bls.sign(verdictMessageSigningBytes(passMsg)))
  // bitmap claims 33, aggregate holds 32
  t.throws(
    () => verifyCertificate({ ...base, qc: qcFrom(range(need), { sigs: sigs.slice(0, need - 1) }) }),
    BadVerdictSignatureError,
    'one signature missing'
  )
  // bitmap claims a member who did not sign (the 33rd signature is an outsider's)
  const withOutsider = [...sigs.slice(0, need - 1), outsiders[0].bls.sign(verdictMessageSigningBytes(passMsg))]
  t.throws(
    () => verifyCertificate({ ...base, qc: qcFrom(range(need), { sigs: withOutsider }) }),
    BadVerdictSignatureError,
    'non-member signature inside'
  )
  // a signature over another message inside the aggregate
  const other = [...sigs.slice(0, need - 1), member(need - 1).bls.sign(verdictMessageSigningBytes(failMsg))]
  t.throws(
    () => verifyCertificate({ ...base, qc: qcFrom(range(need), { sigs: other }) }),
    BadVerdictSignatureError,
    'mixed messages'
  )
  // one member's signature repeated 33 times under a full bitmap
  t.throws(
    () => verifyCertificate({ ...base, qc: qcFrom(range(need), { sigs: Array(need).fill(sigs[0]) }) }),
    BadVerdictSignatureError,
    'one signature counted 33 times'
  )
  // the right signatures, the bitmap shifted by one
  t.throws(
    () => verifyCertificate({ ...base, qc: qcFrom(range(need, 1), { sigs }) }),
    BadVerdictSignatureError,
    'wrong bitmap'
  )
  // relabelled: same QC for another round, node, chain; outcome or digest changed under the signature
  const qc = qcFrom(range(need))
  t.throws(() => verifyCertificate({ ...base, qc, round: round + 1 }), BadVerdictSignatureError, 'another round')
  t.throws(() => verifyCertificate({ ...base, qc, chainId: 'other-chain' }), BadVerdictSignatureError, 'another chain')
  t.throws(
    () => verifyCertificate({ ...base, qc, nodeId: outsiders[0].nodeId }),
    BadVerdictSignatureError,
    'another node'
  )
  const d = decodeCertificate(qc)
  t.throws(
    () => verifyCertificate({ ...base, qc: encodeCertificate({ ...d, outcome: 'fail', failedClaims: ['firmware'] }) }),
    BadVerdictSignatureError,
    'outcome flipped'
  )
  t.throws(
    () => verifyCertificate({ ...base, qc: encodeCertificate({ ...d, evidenceDigest: sha256(digest) }) }),
    BadVerdictSignatureError,
    'digest changed'
  )
  t.throws(
    () => verifyCertificate({ ...base, qc, seed: sha256(seed) }),
    BadVerdictSignatureError,
    'another seed draws another committee'
  )
})

t.test('bitmap and threshold', async t => {
  t.throws(
    () => verifyCertificate({ ...base, qc: qcFrom(range(need - 1)) }),
    BelowThresholdError,
    '32 valid signers of 48'
  )
  const bad = signerBitmap(k, range(need))
  const longer = new Uint8Array([...bad, 0])
  t.throws(
    () => verifyCertificate({ ...base, qc: qcFrom(range(need), { bitmap: longer }) }),
    BadSignerBitmapError,
    'bitmap a byte too long'
  )
  t.throws(
    () => verifyCertificate({ ...base, qc: qcFrom(range(need), { bitmap: bad.subarray(0, 5) }) }),
    BadSignerBitmapError,
    'bitmap a byte short'
  )
  // k = 44 candidates only → committee of 44, bitmap 6 bytes; a bit at position 46 is outside
  const small = { ...base, candidates: candidates.slice(0, 44) }
  const com44 = drawCommittee({ seed, nodeId: node, candidates: small.candidates.map(c => c.nodeId), k })
  t.equal(com44.length, 44)
  const pos = range(threshold(44))
  const sigs = pos.map(i => (byId.get(com44[i]) as Member).bls.sign(verdictMessageSigningBytes(passMsg)))
  const good = encodeCertificate({ ...passMsg, signers: signerBitmap(44, pos), signature: blsAggregate(sigs) })
  t.equal(verifyCertificate({ ...small, qc: good }).outcome, 'pass')
  const stray = signerBitmap(48, [...pos, 46])
  t.throws(
    () =>
      verifyCertificate({
        ...small,
        qc: encodeCertificate({ ...passMsg, signers: stray, signature: blsAggregate(sigs) })
      }),
    BadSignerBitmapError,
    'bit past the committee'
  )
  t.same(bitmapIndices(signerBitmap(20, [0, 7, 8, 19])), [0, 7, 8, 19])
  t.throws(() => signerBitmap(8, [8]), InvalidInputError)
  t.throws(
    () => verifyCertificate({ ...base, qc: qcFrom(range(need)), candidates: [] }),
    BelowThresholdError,
    'no candidates'
  )
})

t.test('candidate keys', async t => {
  const noKey = candidates.map(c =>
    c.nodeId === committee[3] ? { nodeId: c.nodeId, blsPublicKey: new Uint8Array(0) } : c
  )
  t.throws(() => verifyCertificate({ ...base, qc: qcFrom(range(need)), candidates: noKey }), CandidateKeyMismatchError)
  // a member registered with someone else's key cannot make that key's owner count twice: the
  // chain refuses such a registration (the PoP names the node id)
  const theirs = member(0).bls
  t.throws(
    () =>
      createQuorumRules().verifyPossession({
        nodeId: member(1).nodeId,
        blsPublicKey: theirs.publicKey,
        proof: proveKeyPossession(theirs, member(0).nodeId)
      }),
    BadPossessionProofError
  )
  createQuorumRules().verifyPossession({
    nodeId: member(0).nodeId,
    blsPublicKey: theirs.publicKey,
    proof: proveKeyPossession(theirs, member(0).nodeId)
  })
})

t.test('single verdicts: member-submitted and fault proofs', async t => {
  const v = sign(member(4), { ...failMsg, failedClaims: ['firmware', 'containers', 'firmware'] })
  t.same(v.failedClaims, ['containers', 'firmware'], 'signMemberVerdict normalizes the claims')
  const bytes = encodeMemberVerdict(v)
  t.same(decodeMemberVerdict(bytes), v)
  const r = verifyMemberVerdict({ ...base, verdict: bytes })
  t.equal(r.index, 4)
  t.equal(r.verdict.member, committee[4])
  t.same(createQuorumRules().verifyVerdict({ ...base, verdict: bytes }), r)
  t.throws(
    () => verifyMemberVerdict({ ...base, verdict: encodeMemberVerdict(sign(outsiders[0])) }),
    NotCommitteeMemberError,
    'non-member'
  )
  t.throws(
    () =>
      verifyMemberVerdict({ ...base, verdict: encodeMemberVerdict(signMemberVerdict(passMsg, node, member(0).bls)) }),
    NotCommitteeMemberError,
    'the node judging itself'
  )
  t.throws(
    () => verifyMemberVerdict({ ...base, verdict: encodeMemberVerdict({ ...sign(member(5)), member: committee[6] }) }),
    BadVerdictSignatureError,
    'impostor: member 5 signs as member 6'
  )
  t.throws(
    () =>
      verifyMemberVerdict({
        ...base,
        verdict: encodeMemberVerdict({ ...sign(member(5)), evidenceDigest: sha256(digest) })
      }),
    BadVerdictSignatureError,
    'digest changed'
  )
  t.throws(() => verifyMemberVerdict({ ...base, verdict: bytes, round: round + 1 }), WrongSubjectError)
  t.throws(() => verifyMemberVerdict({ ...base, verdict: bytes, nodeId: outsiders[1].nodeId }), WrongSubjectError)
  t.throws(() => verifyMemberVerdict({ ...base, verdict: bytes, chainId: 'x' }), WrongSubjectError)
  // an object passed directly gets the same field checks as bytes
  t.throws(
    () => verifyMemberVerdict({ ...base, verdict: { ...v, failedClaims: ['firmware', 'containers'] } }),
    InvalidInputError,
    'unsorted claims'
  )
})

t.test('message rules: canonical claims, outcome/claims consistency', async t => {
  t.same(normalizeClaims(['os', 'firmware', 'os']), ['firmware', 'os'])
  t.throws(
    () => encodeMemberVerdict({ ...sign(member(0)), failedClaims: ['firmware'] }),
    InvalidInputError,
    'pass with claims'
  )
  t.throws(
    () => signMemberVerdict({ ...failMsg, failedClaims: [] }, member(0).nodeId, member(0).bls),
    InvalidInputError,
    'fail without claims'
  )
  t.throws(
    () => signMemberVerdict({ ...failMsg, failedClaims: ['Firmware'] }, member(0).nodeId, member(0).bls),
    InvalidInputError,
    'claim name spelling'
  )
  t.throws(
    () => signMemberVerdict({ ...failMsg, evidenceDigest: new Uint8Array(31) }, member(0).nodeId, member(0).bls),
    InvalidInputError
  )
  t.throws(() => signMemberVerdict({ ...failMsg, round: -1 }, member(0).nodeId, member(0).bls), InvalidInputError)
  // hand-made encodings the decoder must refuse
  const v = sign(member(0), failMsg)
  const fields = {
    v: 3,
    chainId,
    nodeId: node,
    round,
    outcome: 'fail',
    evidenceDigest: digest,
    failedClaims: ['containers', 'firmware'],
    member: v.member,
    signature: v.signature
  }
  t.same(decodeMemberVerdict(encode(fields)), v, 'the documented layout')
  t.throws(
    () => decodeMemberVerdict(encode({ ...fields, failedClaims: ['firmware', 'containers'] })),
    DecodeError,
    'unsorted'
  )
  t.throws(
    () => decodeMemberVerdict(encode({ ...fields, failedClaims: ['firmware', 'firmware'] })),
    DecodeError,
    'duplicate claim'
  )
  t.throws(() => decodeMemberVerdict(encode({ ...fields, v: 2 })), DecodeError, 'version')
  t.throws(() => decodeMemberVerdict(encode({ ...fields, outcome: 'maybe' })), DecodeError)
  t.throws(() => decodeMemberVerdict(encode({ ...fields, extra: 1 })), DecodeError, 'unknown field')
  t.throws(() => decodeMemberVerdict(encode({ ...fields, signature: new Uint8Array(95) })), DecodeError)
  t.throws(() => decodeMemberVerdict(new Uint8Array(2000)), TooLargeError)
  const qcFields = {
    v: 3,
    outcome: 'pass',
    evidenceDigest: digest,
    failedClaims: [],
    signers: signerBitmap(k, range(need)),
    signature: new Uint8Array(96)
  }
  t.same(encode(qcFields), encodeCertificate(qcFields as Parameters<typeof encodeCertificate>[0]), 'QC layout')
  t.throws(() => decodeCertificate(encode({ ...qcFields, v: 2 })), DecodeError, 'QC v2 is not a v3')
  t.throws(() => decodeCertificate(encode({ ...qcFields, signers: new Uint8Array(0) })), DecodeError)
  t.throws(() => decodeCertificate(encode({ ...qcFields, nodeId: node })), DecodeError, 'unknown QC field')
  t.throws(() => decodeCertificate(new Uint8Array(1025)), TooLargeError)
})

t.test('size: a QC fits in 1 KB at k = 48 and in the worst case at k = 128', async t => {
  const pass = qcFrom(range(k))
  t.ok(pass.length <= 256, `passing QC, all 48 signing: ${pass.length} bytes`)
  const claims = Array.from(
    { length: QUORUM_LIMITS.failedClaims },
    (_, i) => `c${String(i).padStart(2, '0')}${'x'.repeat(QUORUM_LIMITS.claimNameChars - 3)}`
  )
  const worst = encodeCertificate({
    outcome: 'fail',
    evidenceDigest: digest,
    failedClaims: claims,
    signers: signerBitmap(128, range(128)),
    signature: pass.subarray(pass.length - 96)
  })
  t.ok(worst.length <= QUORUM_LIMITS.qcBytes, `worst case ${worst.length} bytes`)
  t.same(decodeCertificate(worst).failedClaims, claims)
})

t.test('collector: groups identical verdicts, refuses bad ones, aggregates', async t => {
  const com = committee.map(id => ({ nodeId: id, blsPublicKey: (byId.get(id) as Member).bls.publicKey }))
  const c = new CertificateCollector({ chainId, nodeId: node, round, committee: com })
  t.equal(c.threshold, need)
  t.throws(() => c.certificate(), BelowThresholdError)
  t.throws(() => c.add(sign(outsiders[0])), NotCommitteeMemberError)
  t.throws(
    () => c.add(signMemberVerdict({ ...passMsg, round: round + 1 }, member(0).nodeId, member(0).bls)),
    WrongSubjectError
  )
  t.throws(() => c.add({ ...sign(member(0)), signature: sign(member(1)).signature }), BadVerdictSignatureError)
  t.same(c.counts, { heard: 0, largest: 0, pass: 0, fail: 0 }, 'nothing recorded from bad verdicts')
  c.add(encodeMemberVerdict(sign(member(0))))
  t.throws(() => c.add(sign(member(0))), DuplicateVerdictError, 'same verdict twice')
  t.throws(() => c.add(sign(member(0), failMsg)), DuplicateVerdictError, 'same member, other verdict')
  // 10 members judged other evidence (an equivocating node): they do not aggregate with the rest
  const otherEvidence = { ...passMsg, evidenceDigest: sha256(utf8.encode('other bundle')) }
  for (let i = 1; i <= 10; i++) c.add(sign(member(i), otherEvidence))
  for (let i = 11; i < 11 + need - 2; i++) c.add(sign(member(i)))
  t.same(c.counts, { heard: 1 + 10 + need - 2, largest: need - 1, pass: 1 + 10 + need - 2, fail: 0 })
  t.equal(c.outcome(), undefined)
  t.notOk(c.undecidable(), `${need - 1} identical, ${k - c.counts.heard} not heard`)
  c.add(sign(member(47)))
  t.equal(c.outcome(), 'pass')
  const cert = c.certificate()
  t.equal(cert.signers.length, need)
  t.notOk(cert.signers.includes(committee[5]), 'the other-evidence group is not in the QC')
  const r = verifyCertificate({ ...base, qc: cert.qc })
  t.same(r.signers, cert.signers)
  t.same(r.evidenceDigest, digest)
})

t.test('collector: undecidable when no group can reach the threshold', async t => {
  const com = committee.map(id => ({ nodeId: id, blsPublicKey: (byId.get(id) as Member).bls.publicKey }))
  const c = new CertificateCollector({ chainId, nodeId: node, round, committee: com })
  // 16 pass, 16 fail: the 16 not heard cannot lift either side to 33
  for (let i = 0; i < 16; i++) c.add(sign(member(i)))
  for (let i = 16; i < 31; i++) c.add(sign(member(i), failMsg))
  t.notOk(c.undecidable(), '16 pass + 17 left = 33 is still reachable')
  c.add(sign(member(31), failMsg))
  t.ok(c.undecidable())
  t.throws(() => new CertificateCollector({ chainId, nodeId: node, round, committee: [] }), BelowThresholdError)
  t.throws(
    () => new CertificateCollector({ chainId, nodeId: node, round, committee: [com[0], com[0]] }),
    InvalidInputError
  )
})

t.test('fuzz: mutated, truncated and extended QCs and verdicts are refused with InvalidInputError', async t => {
  const qc = qcFrom(range(need + 3))
  t.equal(verifyCertificate({ ...base, qc }).outcome, 'pass')
  let x = 4242
  const rnd = (n: number): number => {
    x = (x * 1103515245 + 12345) & 0x7fffffff
    return x % n
  }
  const expectRefused = (input: Uint8Array, what: string, check: (b: Uint8Array) => unknown): boolean => {
    try {
      check(input)
    } catch (err) {
      if (!(err instanceof InvalidInputError)) throw err
      return true
    }
    t.fail(`${what} accepted: ${Buffer.from(input).toString('hex')}`)
    return false
  }
  let n = 0
  const verify = (b: Uint8Array): unknown => verifyCertificate({ ...base, qc: b })
  for (let i = 0; i < 400; i++) {
    const m = new Uint8Array(qc)
    for (let e = 1 + rnd(3); e > 0; e--) m[rnd(m.length)] ^= 1 + rnd(255) // always a change
    if (expectRefused(m, 'mutated QC', verify)) n++
  }
  for (let len = 0; len < qc.length; len++)
    if (expectRefused(qc.subarray(0, len), `QC truncated to ${len}`, verify)) n++
  for (let extra = 1; extra <= 8; extra++)
    if (
      expectRefused(new Uint8Array([...qc, ...new Uint8Array(extra).fill(rnd(256))]), `QC extended by ${extra}`, verify)
    )
      n++
  t.equal(n, 400 + qc.length + 8, 'every altered QC refused')
  const mv = encodeMemberVerdict(sign(member(2), failMsg))
  const check = (b: Uint8Array): unknown => verifyMemberVerdict({ ...base, verdict: b })
  let m2 = 0
  for (let i = 0; i < 300; i++) {
    const m = new Uint8Array(mv)
    for (let e = 1 + rnd(3); e > 0; e--) m[rnd(m.length)] ^= 1 + rnd(255)
    if (expectRefused(m, 'mutated verdict', check)) m2++
  }
  for (let len = 0; len < mv.length; len++)
    if (expectRefused(mv.subarray(0, len), `verdict truncated to ${len}`, check)) m2++
  if (expectRefused(new Uint8Array([...mv, 0]), 'verdict extended', check)) m2++
  t.equal(m2, 300 + mv.length + 1, 'every altered verdict refused')
})

t.test('collector with deferred signature checks: one aggregate check, bad ones found and dropped', async t => {
  const com = committee.map(id => ({ nodeId: id, blsPublicKey: (byId.get(id) as Member).bls.publicKey }))
  const honest = new CertificateCollector({ chainId, nodeId: node, round, committee: com, deferSignatures: true })
  for (let i = 0; i < need; i++) honest.add(sign(member(i)))
  t.equal(honest.outcome(), 'pass')
  t.same(honest.rejected, [])
  t.equal(verifyCertificate({ ...base, qc: honest.certificate().qc }).signers.length, need)

  const c = new CertificateCollector({ chainId, nodeId: node, round, committee: com, deferSignatures: true })
  // members 3 and 7 send verdicts whose signatures are not theirs; accepted for now
  for (let i = 0; i < need; i++) {
    const v = sign(member(i))
    c.add(i === 3 || i === 7 ? { ...v, signature: sign(member(40)).signature } : v)
  }
  t.throws(() => c.add(sign(member(3))), DuplicateVerdictError, 'while unchecked, the slot is taken')
  t.equal(c.outcome(), undefined, 'the check at the threshold finds two bad signatures')
  t.same(c.rejected.map(r => r.member).sort(), [committee[3], committee[7]].sort())
  t.equal(c.counts.heard, need - 2)
  c.add(sign(member(3)))
  t.equal(c.outcome(), undefined)
  c.add(sign(member(7)))
  t.equal(c.outcome(), 'pass', 'members resent: threshold reached with valid signatures')
  const cert = c.certificate()
  t.same(verifyCertificate({ ...base, qc: cert.qc }).signers, cert.signers)
  // garbage signature bytes (not a G2 point) are also found at the check
  const g = new CertificateCollector({ chainId, nodeId: node, round, committee: com, deferSignatures: true })
  for (let i = 0; i < need; i++)
    g.add(i === 0 ? { ...sign(member(0)), signature: new Uint8Array(96).fill(7) } : sign(member(i)))
  t.equal(g.outcome(), undefined)
  t.same(
    g.rejected.map(r => r.member),
    [committee[0]]
  )
})

t.test('collector: a verdict naming another member than its sender is refused before it takes a place', async t => {
  const com = committee.map(id => ({ nodeId: id, blsPublicKey: (byId.get(id) as Member).bls.publicKey }))
  const c = new CertificateCollector({ chainId, nodeId: node, round, committee: com, deferSignatures: true })
  // member 1 sends a verdict claiming to be member 2 (its own signature, or garbage: unchecked yet)
  t.throws(() => c.add({ ...sign(member(1)), member: committee[2] }, { from: committee[1] }), WrongSubjectError)
  t.equal(c.counts.heard, 0)
  c.add(sign(member(2)), { from: committee[2] })
  t.equal(c.counts.heard, 1, "member 2's own verdict still counts")
})
