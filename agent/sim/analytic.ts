// What the committee draw promises, computed exactly: a committee of k members drawn from a
// population where a fraction F = num/den colludes. A round is forged when the colluders alone
// reach the threshold t(k) = ⌊2k/3⌋ + 1 (they pass a bad node); it is blocked when they hold more
// than k − t(k) seats (the honest members can no longer reach t(k) without them).
//
//   P_forge(k)   = P(Binomial(k, F) ≥ t(k))
//   P_blocked(k) = P(Binomial(k, F) > k − t(k))
//
// Binomial, i.e. members drawn with replacement: for a finite population the real draw (without
// replacement, hypergeometric) has thinner tails, so these figures are an upper bound and the
// committee size they give is conservative. The arithmetic is the product's own
// (attestation/quorum/sizing.ts: exact BigInt rationals; floats only for display), so the
// simulator reports exactly what the chain would decide.
import * as sizing from '../../attestation/quorum/sizing.ts'
import { threshold } from '../../attestation/quorum/committee.ts'
import { InvalidInputError } from '../../encoding/errors.ts'

export interface Fraction {
  readonly num: number
  readonly den: number
}

/** Votes needed on one side: strictly more than 2/3 of the committee. */
export function thresholdOf(k: number): number {
  return threshold(k)
}

function gcd(a: number, b: number): number {
  while (b !== 0) [a, b] = [b, a % b]
  return a
}

/**
 * "0.2", "1/3", "20%" → a reduced fraction in [0, 1). Decimals are taken exactly as written
 * (0.333 is 333/1000, not 1/3).
 */
export function parseFraction(s: string): Fraction {
  const t = s.trim()
  let num: number
  let den: number
  let m: RegExpMatchArray | null
  if ((m = /^(\d{1,6})\s*\/\s*(\d{1,6})$/.exec(t)) !== null) {
    num = Number(m[1])
    den = Number(m[2])
  } else if ((m = /^(\d{1,3})(?:\.(\d{1,6}))?%$/.exec(t)) !== null) {
    const frac = m[2] ?? ''
    num = Number(m[1] + frac)
    den = 100 * 10 ** frac.length
  } else if ((m = /^0?\.(\d{1,6})$|^0$/.exec(t)) !== null) {
    const frac = m[1] ?? ''
    num = frac === '' ? 0 : Number(frac)
    den = 10 ** frac.length
  } else throw new InvalidInputError(`fraction ${JSON.stringify(s.slice(0, 40))}: write it as 0.2, 1/3 or 20%`)
  if (den === 0 || num >= den)
    throw new InvalidInputError(`fraction ${JSON.stringify(s)} must be at least 0 and below 1`)
  const g = gcd(num, den) || 1
  return { num: num / g, den: den / g }
}

export const fractionValue = (f: Fraction): number => f.num / f.den

/** P_forge(k) as a float (display and simulation; the chain decides with exact arithmetic). */
export function forgeProbability(k: number, f: Fraction): number {
  return sizing.forgeProbability(k, f.num, f.den)
}

/** P(colluders > k − t(k)): an honest node's round cannot reach a quorum without them. */
export function blockedProbability(k: number, f: Fraction): number {
  return sizing.blockedProbability(k, f.num, f.den)
}

/** ⌊−log2 P_forge(k)⌋, exact; capped at 1024 (F = 0 never forges). */
export function securityBitsAt(k: number, f: Fraction): number {
  return Math.min(1024, sizing.securityBitsAt(k, f.num, f.den))
}

/** Smallest k (≥ 4) whose forge probability is at most 2^−bits, as the chain computes it. */
export function committeeSizeFor(f: Fraction, bits: number): number {
  return sizing.committeeSizeFor({ fractionNum: f.num, fractionDen: f.den, securityBits: bits })
}
