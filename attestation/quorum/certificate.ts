// Quorum certificate verification (what the chain runs on attest.record) and the collector the
// node uses to build one. Data in, data out: bytes, a seed and the candidate list in; a verified
// result or one specific InvalidInputError subclass out.
import { equal } from '../../encoding/bytes.ts'
import { DecodeError, InvalidInputError } from '../../encoding/errors.ts'
import { selectCommittee, threshold, DEFAULT_COMMITTEE_SIZE, MAX_COMMITTEE_SIZE } from './committee.ts'
import { publicKeyFromNodeId, verifyEd25519 } from './keys.ts'
import {
  decodeQuorumCertificate, decodeVerdict, encodeQcEntries, encodeVerdict, verdictSigningBytes, WrongSubjectError,
  type QcEntry, type SignedVerdict, type Verdict
} from './verdict.ts'

export { WrongSubjectError }

export class NotCommitteeMemberError extends InvalidInputError {
  override readonly code: string = 'ERR_NOT_COMMITTEE_MEMBER'
}
export class DuplicateVerdictError extends InvalidInputError {
  override readonly code: string = 'ERR_DUPLICATE_VERDICT'
}
export class BadVerdictSignatureError extends InvalidInputError {
  override readonly code: string = 'ERR_BAD_SIGNATURE'
}
export class ExpiredVerdictError extends InvalidInputError {
  override readonly code: string = 'ERR_EXPIRED'
}
export class BelowThresholdError extends InvalidInputError {
  override readonly code: string = 'ERR_BELOW_THRESHOLD'
}
export class CandidateKeyMismatchError extends InvalidInputError {
  override readonly code: string = 'ERR_CANDIDATE_KEY'
}

export interface Candidate { readonly nodeId: string, readonly publicKey: Uint8Array }

export interface VerifyCertificateInput {
  readonly qc: Uint8Array
  readonly nodeId: string
  readonly round: number
  readonly seed: Uint8Array
  readonly candidates: readonly Candidate[]
  /** Milliseconds since the Unix epoch (block time on chain). */
  readonly now: number
  /** Committee size the network uses (default 7). */
  readonly k?: number
}

export interface VerifiedCertificate {
  readonly outcome: 'pass' | 'fail'
  /** Min of expiresAt over the verdicts that make the outcome. */
  readonly expiresAt: number
  readonly committee: readonly string[]
  readonly threshold: number
  /** Members whose verdict is in the QC, by side. */
  readonly passed: readonly string[]
  readonly failed: readonly string[]
}

/** Structurally the chain's `QuorumRules` (docs/CONTRACTS.md); chain/ does not import us. */
export interface QuorumRules {
  verifyCertificate (input: { qc: Uint8Array, nodeId: string, round: number, seed: Uint8Array,
    candidates: readonly { nodeId: string, publicKey: Uint8Array }[], now: number, k?: number }):
  { outcome: 'pass' | 'fail', expiresAt: number, committee: readonly string[] }
}

function checkCommitteeSize (k: number): void {
  if (!Number.isSafeInteger(k) || k < 1 || k > MAX_COMMITTEE_SIZE) throw new InvalidInputError(`committee size must be 1..${MAX_COMMITTEE_SIZE}`)
}

export function createQuorumRules (opts: { k?: number } = {}): QuorumRules {
  const k = opts.k ?? DEFAULT_COMMITTEE_SIZE
  checkCommitteeSize(k)
  return {
    verifyCertificate: input => {
      // the chain may pass its genesis committee size; otherwise the configured one
      const r = verifyQuorumCertificate({ ...input, k: input.k ?? k })
      return { outcome: r.outcome, expiresAt: r.expiresAt, committee: r.committee }
    }
  }
}

interface CheckContext {
  readonly nodeId: string
  readonly round: number
  /** committee member id → raw ed25519 public key */
  readonly keys: ReadonlyMap<string, Uint8Array>
}

/**
 * Decodes one signed verdict as a member sent it and checks subject, membership and signature.
 * The bytes must be the canonical encoding of the verdict (strict decoding ensures it; checked
 * again here) because a QC carries the verdict's fields, not its bytes, and its verifier signs
 * off on the re-encoding.
 */
export function checkSignedVerdict (sv: SignedVerdict, ctx: CheckContext): Verdict {
  const v = decodeVerdict(sv.verdict)
  if (v.nodeId !== ctx.nodeId) throw new WrongSubjectError(`verdict is about node ${v.nodeId}, not ${ctx.nodeId}`)
  if (v.round !== ctx.round) throw new WrongSubjectError(`verdict is for round ${v.round}, not ${ctx.round}`)
  if (!equal(encodeVerdict(v), sv.verdict)) throw new DecodeError('verdict bytes are not the canonical encoding of the verdict')
  checkSignature(v, sv.verdict, sv.signature, ctx)
  return v
}

/** Membership and signature of one QC entry (its node and round are the QC's, already checked). */
function checkEntry (e: QcEntry, ctx: CheckContext): Verdict {
  checkSignature(e.verdict, encodeVerdict(e.verdict), e.signature, ctx)
  return e.verdict
}

function checkSignature (v: Verdict, bytes: Uint8Array, signature: Uint8Array, ctx: CheckContext): void {
  const key = ctx.keys.get(v.member)
  if (key === undefined) throw new NotCommitteeMemberError(`${v.member} is not on the committee of round ${ctx.round} for ${ctx.nodeId}`)
  if (!verifyEd25519(key, verdictSigningBytes(bytes), signature)) throw new BadVerdictSignatureError(`verdict signature of ${v.member} does not verify`)
}

function committeeKeys (committee: readonly string[], candidates: readonly Candidate[]): Map<string, Uint8Array> {
  const byId = new Map<string, Uint8Array>()
  for (const c of candidates) if (!byId.has(c.nodeId)) byId.set(c.nodeId, c.publicKey)
  const keys = new Map<string, Uint8Array>()
  for (const id of committee) {
    const given = byId.get(id)
    const embedded = publicKeyFromNodeId(id)
    if (given !== undefined && !equal(given, embedded)) throw new CandidateKeyMismatchError(`candidate ${id}: registered public key does not match its node id`)
    keys.set(id, embedded)
  }
  return keys
}

/**
 * Full QC check: strict decoding and size limits; committee re-derived from seed and candidates
 * (the node itself excluded); every verdict for this node and round, signed by a distinct
 * committee member; ≥ threshold(k) verdicts on one side; that side's earliest expiry after now.
 */
export function verifyQuorumCertificate (input: VerifyCertificateInput): VerifiedCertificate {
  const k = input.k ?? DEFAULT_COMMITTEE_SIZE
  checkCommitteeSize(k)
  if (!Number.isSafeInteger(input.now)) throw new InvalidInputError('now must be an integer (ms since epoch)')
  const qc = decodeQuorumCertificate(input.qc)
  if (qc.nodeId !== input.nodeId) throw new WrongSubjectError(`QC is about node ${qc.nodeId}, not ${input.nodeId}`)
  if (qc.round !== input.round) throw new WrongSubjectError(`QC is for round ${qc.round}, not ${input.round}`)
  const candidates = input.candidates.filter(c => c.nodeId !== input.nodeId)
  const committee = selectCommittee(input.seed, candidates.map(c => c.nodeId), k)
  if (committee.length === 0) throw new BelowThresholdError('no candidates: the committee is empty')
  const need = threshold(committee.length)
  if (qc.entries.length > committee.length) throw new InvalidInputError(`QC holds ${qc.entries.length} verdicts for a committee of ${committee.length}`)
  const ctx: CheckContext = { nodeId: input.nodeId, round: input.round, keys: committeeKeys(committee, candidates) }
  const seen = new Set<string>()
  const pass: Verdict[] = []
  const fail: Verdict[] = []
  for (const e of qc.entries) {
    const v = checkEntry(e, ctx)
    if (seen.has(v.member)) throw new DuplicateVerdictError(`two verdicts from ${v.member}`)
    seen.add(v.member)
    ;(v.pass ? pass : fail).push(v)
  }
  const side = pass.length >= need ? pass : fail.length >= need ? fail : undefined
  if (side === undefined) {
    throw new BelowThresholdError(`${pass.length} pass and ${fail.length} fail verdicts; ${need} of ${committee.length} needed on one side`)
  }
  const expiresAt = Math.min(...side.map(v => v.expiresAt))
  if (expiresAt <= input.now) throw new ExpiredVerdictError(`the certificate expired at ${new Date(expiresAt).toISOString()}`)
  return {
    outcome: side === pass ? 'pass' : 'fail',
    expiresAt,
    committee,
    threshold: need,
    passed: pass.map(v => v.member),
    failed: fail.map(v => v.member)
  }
}

/**
 * Collects verdicts for one round as they arrive (node side). Each is checked on arrival, so a
 * member sending garbage is dropped without disturbing the others. Once one side reaches the
 * threshold, `certificate()` builds the smallest QC (threshold verdicts of that side, the ones
 * that expire last) — small enough for a transaction.
 */
export class QuorumCollector {
  readonly nodeId: string
  readonly round: number
  readonly committee: readonly string[]
  readonly threshold: number
  readonly #ctx: CheckContext
  readonly #pass = new Map<string, QcEntry>()
  readonly #fail = new Map<string, QcEntry>()

  constructor (opts: { nodeId: string, round: number, committee: readonly string[] }) {
    if (opts.committee.length === 0) throw new BelowThresholdError('empty committee')
    this.nodeId = opts.nodeId
    this.round = opts.round
    this.committee = [...opts.committee]
    this.threshold = threshold(opts.committee.length)
    this.#ctx = { nodeId: opts.nodeId, round: opts.round, keys: committeeKeys(this.committee, []) }
  }

  /** Checks and records one verdict; throws (and records nothing) if it is invalid, duplicated or expired. */
  add (sv: SignedVerdict, now = Date.now()): Verdict {
    const v = checkSignedVerdict(sv, this.#ctx)
    if (this.#pass.has(v.member) || this.#fail.has(v.member)) throw new DuplicateVerdictError(`two verdicts from ${v.member}`)
    if (v.expiresAt <= now) throw new ExpiredVerdictError(`verdict of ${v.member} already expired`)
    ;(v.pass ? this.#pass : this.#fail).set(v.member, { verdict: v, signature: sv.signature })
    return v
  }

  get counts (): { pass: number, fail: number } { return { pass: this.#pass.size, fail: this.#fail.size } }

  outcome (): 'pass' | 'fail' | undefined {
    if (this.#pass.size >= this.threshold) return 'pass'
    if (this.#fail.size >= this.threshold) return 'fail'
    return undefined
  }

  /** True when neither side can still reach the threshold with the members not yet heard. */
  undecidable (): boolean {
    const left = this.committee.length - this.#pass.size - this.#fail.size
    return this.outcome() === undefined && this.#pass.size + left < this.threshold && this.#fail.size + left < this.threshold
  }

  certificate (): { qc: Uint8Array, outcome: 'pass' | 'fail', expiresAt: number } {
    const outcome = this.outcome()
    if (outcome === undefined) throw new BelowThresholdError(`${this.#pass.size} pass and ${this.#fail.size} fail verdicts; ${this.threshold} needed on one side`)
    const side = [...(outcome === 'pass' ? this.#pass : this.#fail).values()]
      .sort((a, b) => b.verdict.expiresAt - a.verdict.expiresAt || (a.verdict.member < b.verdict.member ? -1 : 1))
      .slice(0, this.threshold)
    const qc = encodeQcEntries({ nodeId: this.nodeId, round: this.round, entries: side })
    return { qc, outcome, expiresAt: Math.min(...side.map(s => s.verdict.expiresAt)) }
  }
}
