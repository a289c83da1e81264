// Verdicts and quorum certificates: their canonical encodings and strict decoders (issue 10).
//
//   VerdictMessage = canonical { v:3, chainId, nodeId, round, outcome, evidenceDigest, failedClaims }
//   signature      = BLS(member's BLS key, "quorate/verdict/v3\0" ‖ VerdictMessage)       (bls.ts)
//   MemberVerdict  = canonical { v:3, chainId, nodeId, round, outcome, evidenceDigest, failedClaims,
//                                member, signature }     (one member's verdict: p2p, tx, fault proof)
//   QC v3          = canonical { v:3, outcome, evidenceDigest, failedClaims, signers, signature }
//
// The message has no per-verifier field (no member, no expiry: the chain sets expiry from the
// genesis certification TTL), so every member who judged the same evidence the same way signs the
// same bytes and the signatures add up to one. The QC names its signers with a bitmap over the
// committee in drawn (rank) order: bit i is bit (i mod 8) of byte ⌊i/8⌋, LSB first; exactly
// ⌈k/8⌉ bytes, unused high bits zero. Chain id, node and round are not in the QC: the verifier
// knows them from the transaction and rebuilds the message, so a QC for another chain, node or
// round fails its signature. failedClaims are sorted and unique (one spelling per message).
//
// QC v2 (ed25519, one signature per verdict) and verdict v1 are gone: no chain history has to
// stay readable (histories are regenerated), and one format leaves one thing to check.
import { decode, encode, asMap, field, is, onlyKeys, type Canonical } from '../../encoding/canonical.ts'
import { concat, utf8 } from '../../encoding/bytes.ts'
import { DecodeError, InvalidInputError, TooLargeError } from '../../encoding/errors.ts'
import { MAX_COMMITTEE_SIZE } from './committee.ts'

export const VERDICT_DOMAIN = utf8.encode('quorate/verdict/v3\0')

function checkText(s: string, max: number, what: string): void {
  if (typeof s !== 'string' || s === '' || s.length > max)
    throw new InvalidInputError(`${what} must be 1..${max} characters`)
}

/** A verdict or QC about another node, round or chain than the one asked for. */
export class WrongSubjectError extends InvalidInputError {
  override readonly code: string = 'ERR_WRONG_SUBJECT'
}

/**
 * Limits of v3 messages. A QC is ≈ 200 bytes (k = 48, passing); the worst case (k = 128, 16
 * failed claims of 32 characters) stays under qcBytes, so attest.record fits in 1 KB.
 */
export const LIMITS = {
  chainIdChars: 64,
  nodeIdChars: 128,
  failedClaims: 16,
  claimNameChars: 32,
  memberVerdictBytes: 1024,
  qcBytes: 1024
} as const

const CLAIM_RE = /^[a-z][a-z0-9_.-]{0,31}$/

export type Outcome = 'pass' | 'fail'

/** What a member signs: a judgement of one round's evidence. */
export interface VerdictMessage {
  readonly chainId: string
  /** The node being certified. */
  readonly nodeId: string
  readonly round: number
  readonly outcome: Outcome
  /** sha256 of the canonical evidence bundle judged; 32 bytes. */
  readonly evidenceDigest: Uint8Array
  /** Claims that failed, sorted and unique; empty exactly when the outcome is pass. */
  readonly failedClaims: readonly string[]
}

/** One member's signed verdict. */
export interface MemberVerdict extends VerdictMessage {
  readonly member: string
  /** 96-byte BLS signature over verdictMessageSigningBytes(this). */
  readonly signature: Uint8Array
}

/** A v3 quorum certificate (decoded). */
export interface QuorumCertificate {
  readonly v: 3
  readonly outcome: Outcome
  readonly evidenceDigest: Uint8Array
  readonly failedClaims: readonly string[]
  /** Bitmap over the committee in drawn order. */
  readonly signers: Uint8Array
  /** Aggregate BLS signature of the signers over the message. */
  readonly signature: Uint8Array
}

function messageProblems(m: VerdictMessage): string | undefined {
  if (typeof m.chainId !== 'string' || m.chainId === '' || m.chainId.length > LIMITS.chainIdChars)
    return `chainId must be 1..${LIMITS.chainIdChars} characters`
  if (typeof m.nodeId !== 'string' || m.nodeId === '' || m.nodeId.length > LIMITS.nodeIdChars)
    return `nodeId must be 1..${LIMITS.nodeIdChars} characters`
  if (!Number.isSafeInteger(m.round) || m.round < 0) return 'round must be a non-negative integer'
  return outcomeProblems(m)
}

function outcomeProblems(m: Pick<VerdictMessage, 'outcome' | 'evidenceDigest' | 'failedClaims'>): string | undefined {
  if (m.outcome !== 'pass' && m.outcome !== 'fail') return 'outcome must be "pass" or "fail"'
  if (!(m.evidenceDigest instanceof Uint8Array) || m.evidenceDigest.length !== 32)
    return 'evidenceDigest must be 32 bytes'
  if (!Array.isArray(m.failedClaims) || m.failedClaims.length > LIMITS.failedClaims)
    return `failedClaims must list at most ${LIMITS.failedClaims} claims`
  for (let i = 0; i < m.failedClaims.length; i++) {
    const c = m.failedClaims[i]
    if (typeof c !== 'string' || !CLAIM_RE.test(c))
      return `failed claim ${JSON.stringify(c)} is not a claim name (a lower-case letter, then a-z 0-9 _ . -; up to 32)`
    if (i > 0 && !(m.failedClaims[i - 1] < c)) return 'failedClaims must be sorted and unique'
  }
  if (m.outcome === 'pass' && m.failedClaims.length > 0) return 'a passing verdict lists no failed claims'
  if (m.outcome === 'fail' && m.failedClaims.length === 0) return 'a failing verdict names the claims that failed'
  return undefined
}

/** failedClaims in their one canonical order (sorted, unique), for callers building a message. */
export function normalizeClaims(claims: readonly string[]): string[] {
  return [...new Set(claims)].sort()
}

function messageFields(m: VerdictMessage): Record<string, Canonical> {
  return {
    v: 3,
    chainId: m.chainId,
    nodeId: m.nodeId,
    round: m.round,
    outcome: m.outcome,
    evidenceDigest: m.evidenceDigest,
    failedClaims: [...m.failedClaims]
  }
}

/** The canonical bytes of a verdict message; throws InvalidInputError when a field is invalid. */
export function encodeVerdictMessage(m: VerdictMessage): Uint8Array {
  const p = messageProblems(m)
  if (p !== undefined) throw new InvalidInputError(`verdict: ${p}`)
  return encode(messageFields(m))
}

/** Exactly what a member's BLS key signs for `m`. */
export function verdictMessageSigningBytes(m: VerdictMessage): Uint8Array {
  return concat([VERDICT_DOMAIN, encodeVerdictMessage(m)])
}

/** Signs a verdict as `member` with its BLS key (failedClaims are normalized first). */
export function signMemberVerdict(
  m: VerdictMessage,
  member: string,
  key: { sign(message: Uint8Array): Uint8Array }
): MemberVerdict {
  const msg: VerdictMessage = { ...m, failedClaims: normalizeClaims(m.failedClaims) }
  checkText(member, LIMITS.nodeIdChars, 'verdict member')
  return { ...msg, member, signature: key.sign(verdictMessageSigningBytes(msg)) }
}

/** The message part of a member verdict (what aggregates). */
export function messageOf(v: VerdictMessage): VerdictMessage {
  return {
    chainId: v.chainId,
    nodeId: v.nodeId,
    round: v.round,
    outcome: v.outcome,
    evidenceDigest: v.evidenceDigest,
    failedClaims: v.failedClaims
  }
}

export function encodeMemberVerdict(v: MemberVerdict): Uint8Array {
  const p = messageProblems(v)
  if (p !== undefined) throw new InvalidInputError(`verdict: ${p}`)
  checkText(v.member, LIMITS.nodeIdChars, 'verdict member')
  if (!(v.signature instanceof Uint8Array) || v.signature.length !== 96)
    throw new InvalidInputError('verdict signature must be 96 bytes')
  return encode({ ...messageFields(v), member: v.member, signature: v.signature })
}

const MEMBER_VERDICT_KEYS = [
  'v',
  'chainId',
  'nodeId',
  'round',
  'outcome',
  'evidenceDigest',
  'failedClaims',
  'member',
  'signature'
] as const

function claimsFrom(m: Record<string, Canonical>, key: string, what: string): string[] {
  return field(m, key, what, is.array, 'array').map((c: Canonical) => {
    if (typeof c !== 'string') throw new DecodeError(`${what}.${key}: expected text items`)
    return c
  })
}

function outcomeFrom(m: Record<string, Canonical>, key: string, what: string): Outcome {
  const o = field(m, key, what, is.string, 'text')
  if (o !== 'pass' && o !== 'fail') throw new DecodeError(`${what}.${key}: expected "pass" or "fail"`)
  return o
}

/** Strict decoding of one member's verdict (canonical bytes only, no unknown or missing fields). */
export function decodeMemberVerdict(bytes: Uint8Array): MemberVerdict {
  if (!(bytes instanceof Uint8Array)) throw new DecodeError('verdict: expected bytes')
  if (bytes.length > LIMITS.memberVerdictBytes)
    throw new TooLargeError(`verdict of ${bytes.length} bytes exceeds ${LIMITS.memberVerdictBytes}`)
  const m = asMap(decode(bytes, { maxBytes: LIMITS.memberVerdictBytes, maxDepth: 2, maxItems: 32 }), 'verdict')
  onlyKeys(m, MEMBER_VERDICT_KEYS, 'verdict')
  const v = field(m, 'v', 'verdict', is.uint, 'unsigned integer')
  if (v !== 3) throw new DecodeError(`verdict: unsupported version ${v} (this build reads v3)`)
  const out: MemberVerdict = {
    chainId: field(m, 'chainId', 'verdict', is.string, 'text'),
    nodeId: field(m, 'nodeId', 'verdict', is.string, 'text'),
    round: field(m, 'round', 'verdict', is.uint, 'unsigned integer'),
    outcome: outcomeFrom(m, 'outcome', 'verdict'),
    evidenceDigest: field(m, 'evidenceDigest', 'verdict', is.bytes, 'bytes'),
    failedClaims: claimsFrom(m, 'failedClaims', 'verdict'),
    member: field(m, 'member', 'verdict', is.string, 'text'),
    signature: field(m, 'signature', 'verdict', is.bytes, 'bytes')
  }
  const p = messageProblems(out)
  if (p !== undefined) throw new DecodeError(`verdict: ${p}`)
  if (out.member === '' || out.member.length > LIMITS.nodeIdChars) throw new DecodeError('verdict.member: bad length')
  if (out.signature.length !== 96) throw new DecodeError('verdict.signature: expected 96 bytes')
  return out
}

/** ⌈k/8⌉-byte bitmap with the bits of `indices` (positions in the committee) set. */
export function signerBitmap(k: number, indices: Iterable<number>): Uint8Array {
  if (!Number.isSafeInteger(k) || k < 1 || k > MAX_COMMITTEE_SIZE)
    throw new InvalidInputError(`committee size must be 1..${MAX_COMMITTEE_SIZE}`)
  const b = new Uint8Array(Math.ceil(k / 8))
  for (const i of indices) {
    if (!Number.isSafeInteger(i) || i < 0 || i >= k)
      throw new InvalidInputError(`signer index ${i} is outside a committee of ${k}`)
    b[i >> 3] |= 1 << (i & 7)
  }
  return b
}

/** Committee positions set in a bitmap, ascending. The caller checks the bitmap's length. */
export function bitmapIndices(bitmap: Uint8Array): number[] {
  const out: number[] = []
  for (let i = 0; i < bitmap.length * 8; i++) if ((bitmap[i >> 3] >> (i & 7)) & 1) out.push(i)
  return out
}

const QC3_KEYS = ['v', 'outcome', 'evidenceDigest', 'failedClaims', 'signers', 'signature'] as const

export function encodeCertificate(qc: Omit<QuorumCertificate, 'v'>): Uint8Array {
  const p = outcomeProblems(qc)
  if (p !== undefined) throw new InvalidInputError(`QC: ${p}`)
  if (
    !(qc.signers instanceof Uint8Array) ||
    qc.signers.length === 0 ||
    qc.signers.length > Math.ceil(MAX_COMMITTEE_SIZE / 8)
  )
    throw new InvalidInputError('QC signers bitmap has a bad length')
  if (!(qc.signature instanceof Uint8Array) || qc.signature.length !== 96)
    throw new InvalidInputError('QC signature must be 96 bytes')
  return encode({
    v: 3,
    outcome: qc.outcome,
    evidenceDigest: qc.evidenceDigest,
    failedClaims: [...qc.failedClaims],
    signers: qc.signers,
    signature: qc.signature
  })
}

/**
 * Strict decoding of a QC v3, limits enforced before anything else is looked at. The bitmap's
 * length against the committee is checked by verifyCertificate (it knows k).
 */
export function decodeCertificate(bytes: Uint8Array): QuorumCertificate {
  if (!(bytes instanceof Uint8Array)) throw new DecodeError('QC: expected bytes')
  if (bytes.length > LIMITS.qcBytes) throw new TooLargeError(`QC of ${bytes.length} bytes exceeds ${LIMITS.qcBytes}`)
  const m = asMap(decode(bytes, { maxBytes: LIMITS.qcBytes, maxDepth: 2, maxItems: 32 }), 'QC')
  onlyKeys(m, QC3_KEYS, 'QC')
  const v = field(m, 'v', 'QC', is.uint, 'unsigned integer')
  if (v !== 3) throw new DecodeError(`QC: unsupported version ${v} (expected v3)`)
  const qc: QuorumCertificate = {
    v: 3,
    outcome: outcomeFrom(m, 'outcome', 'QC'),
    evidenceDigest: field(m, 'evidenceDigest', 'QC', is.bytes, 'bytes'),
    failedClaims: claimsFrom(m, 'failedClaims', 'QC'),
    signers: field(m, 'signers', 'QC', is.bytes, 'bytes'),
    signature: field(m, 'signature', 'QC', is.bytes, 'bytes')
  }
  const p = outcomeProblems(qc)
  if (p !== undefined) throw new DecodeError(`QC: ${p}`)
  if (qc.signers.length === 0 || qc.signers.length > Math.ceil(MAX_COMMITTEE_SIZE / 8))
    throw new DecodeError('QC.signers: bad length')
  if (qc.signature.length !== 96) throw new DecodeError('QC.signature: expected 96 bytes')
  return qc
}
