// TEST DOUBLE — for unit tests of chain/ only. The real QuorumRules live in attestation/quorum
// and are injected by the composition root. This double checks no signatures: it accepts any
// "QC" that is canonical CBOR `{ outcome, expiresAt, committee?, signers? }` whose committee members
// are all candidates (signers default to the whole committee), any "verdict" that is canonical `{ member, outcome, evidenceDigest?,
// failedClaims? }` from a committee member, and any BLS key whose "proof" is not all zeros, so
// state-machine tests can drive certification without verifier nodes. Committee size and draw
// are the real arithmetic (exact BigInt; sha256 ranks), since the chain's state depends on them.
import { createHash } from 'node:crypto'
import { decode, encode, asMap, is } from '../encoding/canonical.ts'
import { InvalidInputError } from '../encoding/errors.ts'
import type { AdversaryModel, QuorumRules } from './types.ts'

export function encodeTestOnlyQc(qc: {
  outcome: 'pass' | 'fail'
  expiresAt: number
  committee?: string[]
  signers?: string[]
}): Uint8Array {
  return encode({ outcome: qc.outcome, expiresAt: qc.expiresAt, committee: qc.committee, signers: qc.signers })
}

export function encodeTestOnlyVerdict(v: {
  member: string
  outcome: 'pass' | 'fail'
  evidenceDigest?: Uint8Array
  failedClaims?: string[]
}): Uint8Array {
  return encode({
    member: v.member,
    outcome: v.outcome,
    evidenceDigest: v.evidenceDigest ?? new Uint8Array(32),
    failedClaims: v.failedClaims ?? []
  })
}

/** P_forge(k) = P(Binomial(k, a/b) ≥ ⌊2k/3⌋ + 1) as n / b^k, exact. */
function forgeNumerator(k: number, a: number, b: number): bigint {
  const A = BigInt(a)
  const C = BigInt(b - a)
  const t = Math.floor((2 * k) / 3) + 1
  let n = 0n
  let binom = 1n
  for (let i = 0; i <= k; i++) {
    if (i > 0) binom = (binom * BigInt(k - i + 1)) / BigInt(i)
    if (i >= t) n += binom * A ** BigInt(i) * C ** BigInt(k - i)
  }
  return n
}

/** The same numbers as attestation/quorum committeeSizeWith (a test compares them). */
export function testOnlyCommitteeSize(
  m: AdversaryModel,
  candidates: number
): { k: number; target: number; securityBits: number } {
  const b = BigInt(m.fractionDen)
  let target = 128
  for (let k = 4; k <= 128; k++) {
    if (forgeNumerator(k, m.fractionNum, m.fractionDen) << BigInt(m.securityBits) <= b ** BigInt(k)) {
      target = k
      break
    }
  }
  const k = Math.min(target, candidates)
  if (k === 0) return { k, target, securityBits: 0 }
  const n = forgeNumerator(k, m.fractionNum, m.fractionDen)
  return { k, target, securityBits: n === 0n ? Infinity : (b ** BigInt(k) / n).toString(2).length - 1 }
}

function draw(seed: Uint8Array, nodeId: string, candidates: readonly string[], k: number): string[] {
  const rank = (id: string): string => createHash('sha256').update(seed).update(id).digest('hex')
  return [...new Set(candidates)]
    .filter(id => id !== nodeId)
    .map(id => ({ id, r: rank(id) }))
    .sort((a, b) => (a.r < b.r ? -1 : a.r > b.r ? 1 : 0))
    .slice(0, k)
    .map(x => x.id)
}

function mapOf(bytes: Uint8Array, what: string): Record<string, unknown> {
  try {
    return asMap(decode(bytes), what)
  } catch (err) {
    throw new InvalidInputError(`${what}: ${(err as Error).message}`)
  }
}

export function createTestOnlyQuorumRules(): QuorumRules & { calls: number } {
  const rules: QuorumRules & { calls: number } = {
    calls: 0,
    committeeSize: testOnlyCommitteeSize,
    drawCommittee: input => draw(input.seed, input.nodeId, input.candidates, input.k),
    verifyCertificate(input) {
      rules.calls++
      const m = mapOf(input.qc, 'test qc')
      const outcome = m.outcome
      const expiresAt = m.expiresAt
      if ((outcome !== 'pass' && outcome !== 'fail') || !is.uint((expiresAt ?? null) as never))
        throw new InvalidInputError('test qc: needs outcome and expiresAt')
      const ids = new Set(input.candidates.map(c => c.nodeId))
      const committee = is.array((m.committee ?? null) as never)
        ? (m.committee as string[])
        : input.committee !== undefined
          ? [...input.committee]
          : input.candidates.slice(0, 7).map(c => c.nodeId)
      for (const c of committee) if (!ids.has(c)) throw new InvalidInputError(`test qc: ${c} is not a candidate`)
      const signers = is.array((m.signers ?? null) as never) ? (m.signers as string[]) : committee
      return {
        outcome,
        expiresAt: expiresAt as number,
        committee,
        evidenceDigest: new Uint8Array(32),
        failedClaims: [],
        threshold: Math.floor((2 * committee.length) / 3) + 1,
        signers
      }
    },
    verifyVerdict(input) {
      const m = mapOf(input.verdict, 'test verdict')
      const committee =
        input.committee ??
        draw(
          input.seed,
          input.nodeId,
          input.candidates.map(c => c.nodeId),
          input.k
        )
      const member = m.member
      const outcome = m.outcome
      if (typeof member !== 'string' || (outcome !== 'pass' && outcome !== 'fail'))
        throw new InvalidInputError('test verdict: needs member and outcome')
      const index = committee.indexOf(member)
      if (index < 0) throw new InvalidInputError(`test verdict: ${member} is not on the committee`)
      const evidenceDigest = m.evidenceDigest instanceof Uint8Array ? m.evidenceDigest : new Uint8Array(32)
      const failedClaims = Array.isArray(m.failedClaims) ? (m.failedClaims as string[]) : []
      return {
        verdict: {
          chainId: input.chainId,
          nodeId: input.nodeId,
          round: input.round,
          outcome,
          evidenceDigest,
          failedClaims,
          member,
          signature: new Uint8Array(96)
        },
        committee,
        index
      }
    },
    verifyPossession(input) {
      if (input.proof.every(b => b === 0)) throw new InvalidInputError('test proof of possession: all zeros')
    }
  }
  return rules
}
