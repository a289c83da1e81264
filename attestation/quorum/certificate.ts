// Quorum certificate verification (what the chain runs on attest.record and verifier.fault) and
// the collector that builds one. Data in, data out: bytes, a seed and the candidates with their
// BLS keys in; a verified result or one specific InvalidInputError subclass out. Formats in
// verdict.ts, keys and the rogue-key defence in bls.ts.
import { toHex } from '../../encoding/bytes.ts'
import { InvalidInputError } from '../../encoding/errors.ts'
import { selectCommittee, threshold, MAX_COMMITTEE_SIZE } from './committee.ts'
import { BLS_PUBLIC_KEY_BYTES, blsAggregate, blsFastAggregateVerify, blsVerify, verifyKeyPossession } from './bls.ts'
import { committeeSizeWith, type AdversaryModel } from './sizing.ts'
import {
  WrongSubjectError,
  decodeCertificate,
  decodeMemberVerdict,
  encodeCertificate,
  encodeMemberVerdict,
  verdictMessageSigningBytes,
  messageOf,
  signerBitmap,
  bitmapIndices,
  type MemberVerdict,
  type VerdictMessage,
  type Outcome
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
export class BelowThresholdError extends InvalidInputError {
  override readonly code: string = 'ERR_BELOW_THRESHOLD'
}
/** A committee member without a registered (valid-length) BLS key. */
export class CandidateKeyMismatchError extends InvalidInputError {
  override readonly code: string = 'ERR_CANDIDATE_KEY'
}

/**
 * What chain/ calls (injected: chain/ does not import attestation/); chain/types.ts declares the
 * same shape. All pure and deterministic: every validator gets the same answer.
 */
export interface QuorumRules {
  /** min(committeeSizeFor(model), candidates) and the security level that size reaches. */
  committeeSize(model: AdversaryModel, candidates: number): { k: number; target: number; securityBits: number }
  /** The committee of a round, in drawn order (what a QC's signer bitmap indexes). */
  drawCommittee(input: {
    seed: Uint8Array
    nodeId: string
    candidates: readonly string[]
    k: number
  }): readonly string[]
  verifyCertificate(input: CommitteeInput & { readonly qc: Uint8Array }): VerifiedCertificate
  /** One member's verdict (member-submitted, or inside a fault proof). */
  verifyVerdict(input: CommitteeInput & { readonly verdict: Uint8Array }): {
    verdict: MemberVerdict
    committee: readonly string[]
    index: number
  }
  /** A node.register's BLS key and proof of possession; throws InvalidBlsKeyError or BadPossessionProofError. */
  verifyPossession(input: { nodeId: string; blsPublicKey: Uint8Array; proof: Uint8Array }): void
}

function checkCommitteeSize(k: number): void {
  if (!Number.isSafeInteger(k) || k < 1 || k > MAX_COMMITTEE_SIZE)
    throw new InvalidInputError(`committee size must be 1..${MAX_COMMITTEE_SIZE}`)
}

/**
 * The rules object. `opts.k` is accepted for callers written when the rules carried the committee
 * size; it is only checked, since every check now takes k from its input (the chain's, fixed with
 * the seed).
 */
export function createQuorumRules(opts: { k?: number } = {}): QuorumRules {
  if (opts.k !== undefined) checkCommitteeSize(opts.k)
  return {
    committeeSize: (model, candidates) => committeeSizeWith(model, candidates),
    drawCommittee: input => drawCommittee(input),
    verifyCertificate: input => verifyCertificate(input),
    verifyVerdict: input => verifyMemberVerdict(input),
    verifyPossession: input => {
      verifyKeyPossession(input)
    }
  }
}

export class BadSignerBitmapError extends InvalidInputError {
  override readonly code: string = 'ERR_BAD_SIGNER_BITMAP'
}

/** A candidate verifier as the chain lists it: node id and its registered (PoP-checked) BLS key. */
export interface BlsCandidate {
  readonly nodeId: string
  readonly blsPublicKey: Uint8Array
}

export interface CommitteeInput {
  readonly chainId: string
  readonly nodeId: string
  readonly round: number
  readonly seed: Uint8Array
  /** Every candidate at the round's height; the node itself is left out of the draw. */
  readonly candidates: readonly BlsCandidate[]
  /** Committee size the chain uses (committeeSize(...).k); the draw takes min(k, candidates). */
  readonly k: number
  /**
   * The round's committee when the caller already drew it (drawCommittee) and kept it: skips the
   * re-draw over all candidates. Must be exactly what drawCommittee returned for these inputs.
   */
  readonly committee?: readonly string[]
}

export interface VerifiedCertificate {
  readonly outcome: Outcome
  readonly evidenceDigest: Uint8Array
  readonly failedClaims: readonly string[]
  /** The drawn committee, in rank order (the bitmap's order). */
  readonly committee: readonly string[]
  readonly threshold: number
  /** Committee members whose signatures the aggregate holds. */
  readonly signers: readonly string[]
}

/** The committee of a round: min(k, candidates) members drawn from seed, the node excluded. */
export function drawCommittee(input: {
  seed: Uint8Array
  nodeId: string
  candidates: readonly string[]
  k: number
}): string[] {
  checkCommitteeSize(input.k)
  return selectCommittee(
    input.seed,
    input.candidates.filter(id => id !== input.nodeId),
    input.k
  )
}

function committeeOf(input: CommitteeInput): { committee: readonly string[]; keys: Map<string, Uint8Array> } {
  const byId = new Map<string, Uint8Array>()
  for (const c of input.candidates)
    if (c.nodeId !== input.nodeId && !byId.has(c.nodeId)) byId.set(c.nodeId, c.blsPublicKey)
  let committee: readonly string[]
  if (input.committee === undefined)
    committee = drawCommittee({ seed: input.seed, nodeId: input.nodeId, candidates: [...byId.keys()], k: input.k })
  else {
    // a kept committee is the chain's own record; still, one member twice would count its signature twice
    checkCommitteeSize(input.k)
    committee = input.committee
    if (committee.length > input.k || new Set(committee).size !== committee.length)
      throw new InvalidInputError(
        `the kept committee of round ${input.round} has ${committee.length} entries (k = ${input.k}) or a member twice`
      )
  }
  if (committee.length === 0)
    throw new BelowThresholdError(`no candidates: the committee of round ${input.round} for ${input.nodeId} is empty`)
  const keys = new Map<string, Uint8Array>()
  for (const id of committee) {
    const key = byId.get(id)
    if (!(key instanceof Uint8Array) || key.length !== BLS_PUBLIC_KEY_BYTES)
      throw new CandidateKeyMismatchError(`committee member ${id} has no registered BLS public key`)
    keys.set(id, key)
  }
  return { committee, keys }
}

/**
 * Full QC v3 check, what the chain runs on attest.record: strict decoding and size limits; the
 * committee re-derived from seed and candidates; a bitmap of exactly ⌈|committee|/8⌉ bytes with no
 * bit past the committee; at least threshold(|committee|) signers (> 2/3); the aggregate of their
 * BLS keys verifies over the message rebuilt from chain id, node, round and the QC's outcome,
 * evidence digest and failed claims. Candidates' keys must have passed verifyKeyPossession.
 */
export function verifyCertificate(input: CommitteeInput & { readonly qc: Uint8Array }): VerifiedCertificate {
  const qc = decodeCertificate(input.qc)
  const { committee, keys } = committeeOf(input)
  if (qc.signers.length !== Math.ceil(committee.length / 8))
    throw new BadSignerBitmapError(`signer bitmap of ${qc.signers.length} bytes for a committee of ${committee.length}`)
  const idx = bitmapIndices(qc.signers)
  if (idx.length > 0 && idx[idx.length - 1] >= committee.length)
    throw new BadSignerBitmapError(
      `signer bitmap names position ${idx[idx.length - 1]} of a committee of ${committee.length}`
    )
  const need = threshold(committee.length)
  if (idx.length < need) throw new BelowThresholdError(`${idx.length} signers; ${need} of ${committee.length} needed`)
  const signers = idx.map(i => committee[i])
  const message = {
    chainId: input.chainId,
    nodeId: input.nodeId,
    round: input.round,
    outcome: qc.outcome,
    evidenceDigest: qc.evidenceDigest,
    failedClaims: qc.failedClaims
  }
  const pks = signers.map(id => keys.get(id) as Uint8Array) // every committee member has a key (committeeOf)
  if (!blsFastAggregateVerify(pks, verdictMessageSigningBytes(message), qc.signature)) {
    throw new BadVerdictSignatureError(
      `the aggregate signature of ${signers.length} signers does not verify for round ${input.round} of ${input.nodeId} on ${input.chainId}`
    )
  }
  return {
    outcome: qc.outcome,
    evidenceDigest: qc.evidenceDigest,
    failedClaims: qc.failedClaims,
    committee,
    threshold: need,
    signers
  }
}

/**
 * One member's verdict on its own (member-submitted verdicts, fault proofs): strict decoding;
 * about this chain, node and round; signed by a committee member with its registered BLS key.
 * Returns the verdict and the member's position in the committee.
 */
export function verifyMemberVerdict(input: CommitteeInput & { readonly verdict: Uint8Array | MemberVerdict }): {
  verdict: MemberVerdict
  committee: readonly string[]
  index: number
} {
  const v =
    input.verdict instanceof Uint8Array ? decodeMemberVerdict(input.verdict) : checkedMemberVerdict(input.verdict)
  if (v.chainId !== input.chainId)
    throw new WrongSubjectError(`verdict is for chain ${v.chainId}, not ${input.chainId}`)
  if (v.nodeId !== input.nodeId) throw new WrongSubjectError(`verdict is about node ${v.nodeId}, not ${input.nodeId}`)
  if (v.round !== input.round) throw new WrongSubjectError(`verdict is for round ${v.round}, not ${input.round}`)
  const { committee, keys } = committeeOf(input)
  const key = keys.get(v.member)
  if (key === undefined)
    throw new NotCommitteeMemberError(`${v.member} is not on the committee of round ${input.round} for ${input.nodeId}`)
  if (!blsVerify(key, verdictMessageSigningBytes(v), v.signature))
    throw new BadVerdictSignatureError(`verdict signature of ${v.member} does not verify`)
  return { verdict: v, committee, index: committee.indexOf(v.member) }
}

/** A MemberVerdict object passed in directly gets the same checks as decoded bytes. */
function checkedMemberVerdict(v: MemberVerdict): MemberVerdict {
  try {
    return decodeMemberVerdict(encodeMemberVerdict(v))
  } catch (err) {
    if (err instanceof InvalidInputError) throw err
    throw new InvalidInputError(`verdict: ${(err as Error).message}`, { cause: err })
  }
}

function messageKey(m: VerdictMessage): string {
  return `${m.outcome}/${toHex(m.evidenceDigest)}/${m.failedClaims.join(',')}`
}

/**
 * Collects one round's member verdicts as they arrive (the node, or a member recording the QC).
 * Verdicts group by message (outcome, evidence digest, failed claims): only identical messages
 * aggregate. Once a group reaches the threshold, `certificate()` aggregates it.
 *
 * Each verdict's decoding, subject, membership and uniqueness are checked on arrival. Its
 * signature is checked on arrival too, unless `deferSignatures`: then a group's signatures are
 * checked together, with one aggregate verification (≈ 2 ms at 33 signers instead of ≈ 2 ms
 * each), when the group reaches the threshold; if that fails, each is checked on its own and the
 * bad ones are dropped (`rejected`) and their members may send again. Defer only where each
 * verdict arrives on a channel authenticated as its member (a libp2p stream from that peer), so a
 * forged verdict cannot take another member's place while it waits.
 */
export class CertificateCollector {
  readonly chainId: string
  readonly nodeId: string
  readonly round: number
  readonly committee: readonly string[]
  readonly threshold: number
  readonly #keys: Map<string, Uint8Array>
  readonly #index: Map<string, number>
  readonly #defer: boolean
  readonly #heard = new Set<string>()
  readonly #groups = new Map<string, Group>()
  readonly #rejected: { member: string; reason: string }[] = []

  /** `committee`: the round's members in drawn order, with their registered BLS keys. */
  constructor(opts: {
    chainId: string
    nodeId: string
    round: number
    committee: readonly BlsCandidate[]
    deferSignatures?: boolean
  }) {
    if (opts.committee.length === 0) throw new BelowThresholdError('empty committee')
    if (opts.committee.length > MAX_COMMITTEE_SIZE)
      throw new InvalidInputError(`committee larger than ${MAX_COMMITTEE_SIZE}`)
    this.chainId = opts.chainId
    this.nodeId = opts.nodeId
    this.round = opts.round
    this.committee = opts.committee.map(c => c.nodeId)
    if (new Set(this.committee).size !== this.committee.length)
      throw new InvalidInputError('committee lists a member twice')
    this.threshold = threshold(opts.committee.length)
    this.#keys = new Map(opts.committee.map(c => [c.nodeId, c.blsPublicKey]))
    this.#index = new Map(this.committee.map((id, i) => [id, i]))
    this.#defer = opts.deferSignatures === true
  }

  /**
   * Checks and records one verdict; throws (recording nothing) if invalid or a second one from its
   * member. `from`: the member the verdict arrived from (the authenticated peer); a verdict naming
   * anyone else is refused before it can take that member's place.
   */
  add(verdict: Uint8Array | MemberVerdict, opts: { from?: string } = {}): MemberVerdict {
    const v = verdict instanceof Uint8Array ? decodeMemberVerdict(verdict) : checkedMemberVerdict(verdict)
    if (opts.from !== undefined && v.member !== opts.from)
      throw new WrongSubjectError(`verdict names ${v.member} but came from ${opts.from}`)
    if (v.chainId !== this.chainId)
      throw new WrongSubjectError(`verdict is for chain ${v.chainId}, not ${this.chainId}`)
    if (v.nodeId !== this.nodeId) throw new WrongSubjectError(`verdict is about node ${v.nodeId}, not ${this.nodeId}`)
    if (v.round !== this.round) throw new WrongSubjectError(`verdict is for round ${v.round}, not ${this.round}`)
    const index = this.#index.get(v.member)
    if (index === undefined)
      throw new NotCommitteeMemberError(`${v.member} is not on the committee of round ${this.round} for ${this.nodeId}`)
    if (this.#heard.has(v.member)) throw new DuplicateVerdictError(`two verdicts from ${v.member}`)
    const checked = !this.#defer
    if (checked && !blsVerify(this.#keys.get(v.member) as Uint8Array, verdictMessageSigningBytes(v), v.signature)) {
      throw new BadVerdictSignatureError(`verdict signature of ${v.member} does not verify`)
    }
    this.#heard.add(v.member)
    const key = messageKey(v)
    let g = this.#groups.get(key)
    if (g === undefined) this.#groups.set(key, (g = { message: messageOf(v), sigs: new Map(), checked: new Set() }))
    g.sigs.set(index, v.signature)
    if (checked) g.checked.add(index)
    return v
  }

  /** Verdicts dropped because their signature failed a deferred check. */
  get rejected(): ReadonlyArray<{ member: string; reason: string }> {
    return this.#rejected
  }

  /** Members heard from (deferred bad signatures excluded once found), and group sizes. */
  get counts(): { heard: number; largest: number; pass: number; fail: number } {
    let largest = 0
    let pass = 0
    let fail = 0
    for (const g of this.#groups.values()) {
      largest = Math.max(largest, g.sigs.size)
      if (g.message.outcome === 'pass') pass += g.sigs.size
      else fail += g.sigs.size
    }
    return { heard: this.#heard.size, largest, pass, fail }
  }

  /** Checks the group's unchecked signatures: one aggregate verification, or one by one to find the bad. */
  #settle(g: Group): void {
    const pending = [...g.sigs.keys()].filter(i => !g.checked.has(i))
    if (pending.length === 0) return
    const bytes = verdictMessageSigningBytes({
      ...g.message,
      chainId: this.chainId,
      nodeId: this.nodeId,
      round: this.round
    })
    const keyAt = (i: number): Uint8Array => this.#keys.get(this.committee[i]) as Uint8Array
    let ok = false
    // the sum's subgroup is checked when the aggregate is decoded for verification
    try {
      const sum = blsAggregate(
        pending.map(i => g.sigs.get(i) as Uint8Array),
        { checked: true }
      )
      ok = blsFastAggregateVerify(pending.map(keyAt), bytes, sum)
      // the whole group verified at once: certificate() can reuse this sum (addition commutes)
      if (ok && pending.length === g.sigs.size) g.sum = { of: signerKey(pending), signature: sum }
    } catch {
      ok = false
    }
    for (const i of pending) {
      if (ok || blsVerify(keyAt(i), bytes, g.sigs.get(i) as Uint8Array)) {
        g.checked.add(i)
        continue
      }
      g.sigs.delete(i)
      this.#heard.delete(this.committee[i])
      this.#rejected.push({ member: this.committee[i], reason: 'verdict signature does not verify' })
    }
  }

  #decided(): Group | undefined {
    for (const g of this.#groups.values()) {
      if (g.sigs.size < this.threshold) continue
      this.#settle(g)
      if (g.sigs.size >= this.threshold) return g
    }
    return undefined
  }

  /** The decided outcome, if a group of identical verdicts reached the threshold (settling deferred checks). */
  outcome(): Outcome | undefined {
    return this.#decided()?.message.outcome
  }

  /** True when no verdict group can still reach the threshold with the members not yet heard. */
  undecidable(): boolean {
    if (this.#decided() !== undefined) return false
    const left = this.committee.length - this.#heard.size
    return this.counts.largest + left < this.threshold
  }

  /** The QC v3 of the decided group: all its signers, one aggregate signature. */
  certificate(): { qc: Uint8Array; outcome: Outcome; message: VerdictMessage; signers: readonly string[] } {
    const g = this.#decided()
    if (g === undefined)
      throw new BelowThresholdError(
        `largest group of identical verdicts is ${this.counts.largest}; ${this.threshold} of ${this.committee.length} needed`
      )
    const idx = [...g.sigs.keys()].sort((a, b) => a - b)
    const signature =
      g.sum !== undefined && g.sum.of === signerKey(idx)
        ? g.sum.signature
        : blsAggregate(
            idx.map(i => g.sigs.get(i) as Uint8Array),
            { checked: true }
          ) // all verified (#decided)
    const qc = encodeCertificate({
      outcome: g.message.outcome,
      evidenceDigest: g.message.evidenceDigest,
      failedClaims: g.message.failedClaims,
      signers: signerBitmap(this.committee.length, idx),
      signature
    })
    return { qc, outcome: g.message.outcome, message: g.message, signers: idx.map(i => this.committee[i]) }
  }
}

interface Group {
  readonly message: VerdictMessage
  /** committee position → signature */
  readonly sigs: Map<number, Uint8Array>
  /** positions whose signature has been verified */
  readonly checked: Set<number>
  /** The aggregate of the signers `of` (signerKey), when one check verified the whole group (reused by certificate()). */
  sum?: { of: string; signature: Uint8Array }
}

/** The set of committee positions as a string (order-free: the aggregate does not depend on it). */
function signerKey(positions: readonly number[]): string {
  return [...positions].sort((a, b) => a - b).join(',')
}
