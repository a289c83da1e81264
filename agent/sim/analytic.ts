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
// committee size they give is conservative. Exact rationals in BigInt; floats only for display.
// attestation/quorum/sizing.ts is the chain's own copy of this arithmetic (consensus code); this
// file is the simulator's reference it is checked against in test/sim.
import { InvalidInputError } from '../../encoding/errors.ts'

export interface Fraction { readonly num: number, readonly den: number }

/** Votes needed on one side: strictly more than 2/3 of the committee. */
export function thresholdOf (k: number): number { return Math.floor((2 * k) / 3) + 1 }

function gcd (a: number, b: number): number { while (b !== 0) [a, b] = [b, a % b]; return a }

/**
 * "0.2", "1/3", "20%" → a reduced fraction in [0, 1). Decimals are taken exactly as written
 * (0.333 is 333/1000, not 1/3).
 */
export function parseFraction (s: string): Fraction {
  const t = s.trim()
  let num: number
  let den: number
  let m: RegExpMatchArray | null
  if ((m = /^(\d{1,6})\s*\/\s*(\d{1,6})$/.exec(t)) !== null) { num = Number(m[1]); den = Number(m[2]) } else if ((m = /^(\d{1,3})(?:\.(\d{1,6}))?%$/.exec(t)) !== null) {
    const frac = m[2] ?? ''
    num = Number(m[1] + frac); den = 100 * 10 ** frac.length
  } else if ((m = /^0?\.(\d{1,6})$|^0$/.exec(t)) !== null) {
    const frac = m[1] ?? ''
    num = frac === '' ? 0 : Number(frac); den = 10 ** frac.length
  } else throw new InvalidInputError(`fraction ${JSON.stringify(s.slice(0, 40))}: write it as 0.2, 1/3 or 20%`)
  if (den === 0 || num >= den) throw new InvalidInputError(`fraction ${JSON.stringify(s)} must be at least 0 and below 1`)
  const g = gcd(num, den) || 1
  return { num: num / g, den: den / g }
}

export const fractionValue = (f: Fraction): number => f.num / f.den

function binom (n: number, r: number): bigint {
  let c = 1n
  for (let i = 0; i < r; i++) c = c * BigInt(n - i) / BigInt(i + 1)
  return c
}

/** Exact P(Binomial(k, num/den) ≥ m) as a numerator over den^k. */
function tailNumerator (k: number, f: Fraction, m: number): bigint {
  const p = BigInt(f.num)
  const q = BigInt(f.den - f.num)
  let s = 0n
  for (let i = Math.max(0, m); i <= k; i++) s += binom(k, i) * p ** BigInt(i) * q ** BigInt(k - i)
  return s
}

/** A numerator over den^k as a float, without losing small values to underflow in the division. */
function toFloat (num: bigint, den: bigint): number {
  if (num === 0n) return 0
  const shift = Math.max(0, den.toString(2).length - num.toString(2).length + 60)
  return Number((num << BigInt(shift)) / den) / 2 ** shift
}

function checkK (k: number): void {
  if (!Number.isSafeInteger(k) || k < 1 || k > 1024) throw new InvalidInputError(`committee size must be 1..1024, got ${k}`)
}

export function forgeProbability (k: number, f: Fraction): number {
  checkK(k)
  return toFloat(tailNumerator(k, f, thresholdOf(k)), BigInt(f.den) ** BigInt(k))
}

export function blockedProbability (k: number, f: Fraction): number {
  checkK(k)
  return toFloat(tailNumerator(k, f, k - thresholdOf(k) + 1), BigInt(f.den) ** BigInt(k))
}

/** ⌊−log2 P_forge(k)⌋, exactly: the largest b with P_forge(k) ≤ 2^−b (1024 when P is 0). */
export function securityBitsAt (k: number, f: Fraction): number {
  checkK(k)
  const num = tailNumerator(k, f, thresholdOf(k))
  if (num === 0n) return 1024
  const den = BigInt(f.den) ** BigInt(k)
  // den / num ≥ 2^b ⇔ b ≤ log2(den / num); start from the bit-length estimate and correct
  let b = Math.max(0, den.toString(2).length - num.toString(2).length - 1)
  while ((num << BigInt(b + 1)) <= den) b++
  while (b > 0 && (num << BigInt(b)) > den) b--
  return b
}

/** Smallest k (up to `max`) whose forge probability is at most 2^−bits; undefined if none is. */
export function committeeSizeFor (f: Fraction, bits: number, max = 1024): number | undefined {
  for (let k = 1; k <= max; k++) if (securityBitsAt(k, f) >= bits) return k
  return undefined
}
