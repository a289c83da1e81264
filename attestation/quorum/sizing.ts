// Committee size from a security level (DESIGN.md "Certification rules"; ANCHORS.md "Committee
// security"). A round certifies with threshold(k) = ⌊2k/3⌋ + 1 agreeing verdicts, so colluders
// alone certify a bad node in one round with
//
//   P_forge(k) = P(Binomial(k, F) ≥ threshold(k)) = Σ_{i ≥ t} C(k, i) a^i (b − a)^(k−i) / b^k
//
// for an adversary fraction F = a/b of the candidates. The chain must agree on k bit for bit, so
// the decision uses exact BigInt arithmetic only: P ≤ 2^-bits ⟺ numerator · 2^bits ≤ b^k.
// Floats appear only in forgeProbability/blockedProbability, for display and simulation.
//
// P_forge is not monotone in k (k = 3f + 1 is locally best: k = 7 needs 5 of 7, k = 6 needs 5 of
// 6), so committeeSizeFor returns the smallest k that reaches the level, found by a scan.
import { InvalidInputError } from '../../encoding/errors.ts'
import { threshold, MAX_COMMITTEE_SIZE, MIN_COMMITTEE_SIZE } from './committee.ts'

/** What the network tolerates: a fraction num/den of colluding candidates, and the level sought. */
export interface AdversaryModel {
  readonly fractionNum: number
  readonly fractionDen: number
  /** P_forge ≤ 2^-securityBits per round. */
  readonly securityBits: number
}

/** The default of DESIGN.md: F = 1/5, 40 bits. */
export const DEFAULT_ADVERSARY_MODEL: AdversaryModel = Object.freeze({
  fractionNum: 1,
  fractionDen: 5,
  securityBits: 40
})

/** A model that no committee size up to MAX_COMMITTEE_SIZE satisfies, or that makes no sense. */
export class UnreachableSecurityError extends InvalidInputError {
  override readonly code: string = 'ERR_UNREACHABLE_SECURITY'
}

const MAX_DEN = 1_000_000
const MAX_BITS = 256

function checkFraction(num: number, den: number): void {
  if (!Number.isSafeInteger(num) || !Number.isSafeInteger(den) || den < 1 || den > MAX_DEN || num < 0 || num >= den) {
    throw new InvalidInputError(
      `adversary fraction must be num/den with integers 0 ≤ num < den ≤ ${MAX_DEN}, got ${num}/${den}`
    )
  }
}

function checkK(k: number): void {
  if (!Number.isSafeInteger(k) || k < 1 || k > MAX_COMMITTEE_SIZE)
    throw new InvalidInputError(`committee size must be 1..${MAX_COMMITTEE_SIZE}, got ${k}`)
}

/** Binomial tail P(Binomial(k, a/b) ≥ from) as an exact fraction { n, d } with d = b^k. */
function tail(k: number, from: number, a: number, b: number): { n: bigint; d: bigint } {
  const A = BigInt(a)
  const B = BigInt(b)
  const C = B - A
  let n = 0n
  let binom = 1n // C(k, i), updated incrementally
  for (let i = 0; i <= k; i++) {
    if (i > 0) binom = (binom * BigInt(k - i + 1)) / BigInt(i)
    if (i >= from) n += binom * A ** BigInt(i) * C ** BigInt(k - i)
  }
  return { n, d: B ** BigInt(k) }
}

function bitLength(x: bigint): number {
  return x === 0n ? 0 : x.toString(2).length
}

/** n/d as a double (correctly scaled for tiny values; 0 when it underflows). */
function ratio(n: bigint, d: bigint): number {
  if (n === 0n) return 0
  const shift = bitLength(d) - bitLength(n) + 64
  const q = shift >= 0 ? (n << BigInt(shift)) / d : n / (d << BigInt(-shift))
  return Number(q) * 2 ** -Math.min(shift, 1000) * 2 ** -(Math.max(shift, 1000) - 1000)
}

/** P_forge(k) exactly: colluders alone reach threshold(k). */
function forgeExact(k: number, num: number, den: number): { n: bigint; d: bigint } {
  checkK(k)
  checkFraction(num, den)
  return tail(k, threshold(k), num, den)
}

/**
 * ⌊−log2 P_forge(k)⌋, exact: the largest b with P_forge(k) ≤ 2^-b. Infinity when F = 0 (colluders
 * never forge). Since P ≤ 1, floor(log2(d/n)) = bitLength(⌊d/n⌋) − 1.
 */
export function securityBitsAt(k: number, fractionNum: number, fractionDen: number): number {
  const { n, d } = forgeExact(k, fractionNum, fractionDen)
  if (n === 0n) return Infinity
  return bitLength(d / n) - 1
}

/** P_forge(k) as a float, for display and simulation only (never for consensus). */
export function forgeProbability(k: number, fractionNum: number, fractionDen: number): number {
  const { n, d } = forgeExact(k, fractionNum, fractionDen)
  return ratio(n, d)
}

/**
 * P(colluders > k − threshold(k)): silent or lying colluders leave the honest members short of
 * the threshold, so an honest node's round ends without a quorum. Float, display/simulation only.
 */
export function blockedProbability(k: number, fractionNum: number, fractionDen: number): number {
  checkK(k)
  checkFraction(fractionNum, fractionDen)
  const { n, d } = tail(k, k - threshold(k) + 1, fractionNum, fractionDen)
  return ratio(n, d)
}

const sizeCache = new Map<string, number>()

/**
 * The smallest k ≥ MIN_COMMITTEE_SIZE with P_forge(k) ≤ 2^-securityBits (the floor of 4 keeps one
 * liar tolerated, 3f + 1 with f ≥ 1, even where the statistics would allow fewer, e.g. F = 0).
 * Refuses F ≥ 1/3: there colluders block honest rounds with a probability that tends to 1 as k
 * grows (they outnumber k − threshold), so no size makes the network both safe and live.
 * Refuses a level that needs more than MAX_COMMITTEE_SIZE members. ≈ 48 for F = 1/5, 40 bits.
 */
export function committeeSizeFor(m: AdversaryModel): number {
  const { fractionNum: num, fractionDen: den, securityBits: bits } = m
  checkFraction(num, den)
  if (!Number.isSafeInteger(bits) || bits < 1 || bits > MAX_BITS)
    throw new InvalidInputError(`securityBits must be an integer 1..${MAX_BITS}, got ${bits}`)
  if (3 * num >= den) {
    throw new UnreachableSecurityError(
      `no committee size exists for an adversary fraction of ${num}/${den}: at F ≥ 1/3 colluders block honest rounds (the model needs F < 1/3)`
    )
  }
  const key = `${num}/${den}/${bits}`
  const cached = sizeCache.get(key)
  if (cached !== undefined) return cached
  const limit = 1n << BigInt(bits)
  for (let k = MIN_COMMITTEE_SIZE; k <= MAX_COMMITTEE_SIZE; k++) {
    const { n, d } = forgeExact(k, num, den)
    if (n * limit <= d) {
      if (sizeCache.size > 256) sizeCache.clear()
      sizeCache.set(key, k)
      return k
    }
  }
  throw new UnreachableSecurityError(
    `${bits} bits against F = ${num}/${den} needs a committee larger than ${MAX_COMMITTEE_SIZE}`
  )
}

/**
 * The committee a round draws with `candidates` eligible members (the node itself excluded):
 * min(committeeSizeFor(m), candidates), and the security level that size actually reaches (what
 * the certification records when candidates are few).
 */
export function committeeSizeWith(
  m: AdversaryModel,
  candidates: number
): { k: number; target: number; securityBits: number } {
  const target = committeeSizeFor(m)
  if (!Number.isSafeInteger(candidates) || candidates < 0)
    throw new InvalidInputError(`candidate count must be a non-negative integer, got ${candidates}`)
  const k = Math.min(target, candidates)
  return { k, target, securityBits: k === 0 ? 0 : securityBitsAt(k, m.fractionNum, m.fractionDen) }
}
