import t from 'tap'
import {
  committeeSizeFor,
  committeeSizeWith,
  securityBitsAt,
  forgeProbability,
  blockedProbability,
  UnreachableSecurityError,
  DEFAULT_ADVERSARY_MODEL
} from '../../attestation/quorum/sizing.ts'
import { threshold, MAX_COMMITTEE_SIZE, MIN_COMMITTEE_SIZE } from '../../attestation/quorum/committee.ts'
import { InvalidInputError } from '../../encoding/errors.ts'

// Independent computation: a plain float sum of the binomial tail with log-space terms (not the
// module's BigInt path), compared with a relative tolerance.
function floatTail(k: number, from: number, f: number): number {
  let lnC = 0 // ln C(k, i)
  let p = 0
  for (let i = 0; i <= k; i++) {
    if (i > 0) lnC += Math.log(k - i + 1) - Math.log(i)
    if (i >= from) p += Math.exp(lnC + i * Math.log(f) + (k - i) * Math.log1p(-f))
  }
  return p
}
const close = (a: number, b: number): boolean => Math.abs(a - b) <= 1e-9 * Math.max(Math.abs(a), Math.abs(b))

t.test('exact known values (the figures of issue 10)', async t => {
  // P(Bin(7, 1/5) ≥ 5) = (C(7,5)·4² + C(7,6)·4 + 1) / 5⁷ = 365/78125 = 4.672·10⁻³
  t.equal(forgeProbability(7, 1, 5), 365 / 78125)
  // ⌊−log2(365/78125)⌋ = 7: 2⁻⁸ = 0.0039 < 0.004672 ≤ 2⁻⁷ = 0.0078
  t.equal(securityBitsAt(7, 1, 5), 7)
  // P(Bin(7, 1/10) ≥ 5) = (21·81 + 7·9 + 1)/10⁷ = 1765/10⁷
  t.equal(forgeProbability(7, 1, 10), 1765 / 1e7)
  // F = 1/3: (21·4 + 7·2 + 1)/3⁷ = 99/2187 ≈ 4.5·10⁻²
  t.equal(forgeProbability(7, 1, 3), 99 / 2187)
  // honest blocked at k = 7, F = 1/5: P(X ≥ 3) ≈ 15 %
  t.ok(close(blockedProbability(7, 1, 5), floatTail(7, 3, 0.2)))
  t.ok(Math.abs(blockedProbability(7, 1, 5) - 0.148) < 0.001)
})

t.test('k for F = 1/5 at 40 bits is 48, checked against an independent float scan', async t => {
  const k = committeeSizeFor({ fractionNum: 1, fractionDen: 5, securityBits: 40 })
  t.equal(k, 48)
  t.equal(committeeSizeFor(DEFAULT_ADVERSARY_MODEL), 48)
  const limit = 2 ** -40
  // the float scan agrees wherever the value is not within 1e-6 of the limit (none is, here)
  let floatK = 0
  for (let j = MIN_COMMITTEE_SIZE; j <= MAX_COMMITTEE_SIZE && floatK === 0; j++)
    if (floatTail(j, threshold(j), 0.2) <= limit) floatK = j
  t.equal(floatK, k)
  t.ok(forgeProbability(48, 1, 5) <= limit && forgeProbability(47, 1, 5) > limit)
  t.ok(securityBitsAt(48, 1, 5) >= 40 && securityBitsAt(47, 1, 5) < 40)
})

t.test('forgeProbability and securityBitsAt agree with the float sum for many (k, F)', async t => {
  for (const [num, den] of [
    [1, 5],
    [1, 10],
    [1, 4],
    [3, 10],
    [1, 100],
    [7, 23]
  ]) {
    for (let k = 1; k <= MAX_COMMITTEE_SIZE; k += 7) {
      const exact = forgeProbability(k, num, den)
      const ref = floatTail(k, threshold(k), num / den)
      t.ok(close(exact, ref), `k=${k} F=${num}/${den}: ${exact} vs ${ref}`)
      // bits: 2^-(b+1) < P ≤ 2^-b, with a little slack for the float reference
      const b = securityBitsAt(k, num, den)
      t.ok(ref <= 2 ** -b * (1 + 1e-9) && ref > 2 ** -(b + 1) * (1 - 1e-9), `k=${k} F=${num}/${den}: ${b} bits`)
      t.ok(close(blockedProbability(k, num, den), floatTail(k, k - threshold(k) + 1, num / den)))
    }
  }
})

t.test('the result is the smallest k, and more bits or a larger F never need fewer members', async t => {
  for (const [num, den] of [
    [1, 10],
    [1, 5],
    [1, 4]
  ]) {
    let prev = 0
    for (const bits of [10, 20, 30, 40, 50]) {
      const k = committeeSizeFor({ fractionNum: num, fractionDen: den, securityBits: bits })
      t.ok(k >= prev, `F=${num}/${den}: ${bits} bits → ${k}`)
      prev = k
      t.ok(securityBitsAt(k, num, den) >= bits)
      for (let j = MIN_COMMITTEE_SIZE; j < k; j++)
        t.ok(securityBitsAt(j, num, den) < bits, `k=${j} does not reach ${bits} bits`)
    }
  }
  const ks = [
    [1, 100],
    [1, 10],
    [1, 5],
    [1, 4],
    [3, 10]
  ].map(([n, d]) => committeeSizeFor({ fractionNum: n, fractionDen: d, securityBits: 40 }))
  t.same(
    [...ks].sort((a, b) => a - b),
    ks,
    `non-decreasing in F: ${ks.join(', ')}`
  )
})

t.test('edge cases', async t => {
  // F = 0: colluders never forge; the floor keeps one liar tolerated
  t.equal(committeeSizeFor({ fractionNum: 0, fractionDen: 1, securityBits: 40 }), MIN_COMMITTEE_SIZE)
  t.equal(securityBitsAt(10, 0, 7), Infinity)
  t.equal(forgeProbability(10, 0, 7), 0)
  // F ≥ 1/3: no size is both safe and live
  t.throws(() => committeeSizeFor({ fractionNum: 1, fractionDen: 3, securityBits: 40 }), UnreachableSecurityError)
  t.throws(() => committeeSizeFor({ fractionNum: 2, fractionDen: 5, securityBits: 10 }), { message: /F ≥ 1\/3/ })
  // a level beyond MAX_COMMITTEE_SIZE
  t.throws(() => committeeSizeFor({ fractionNum: 3, fractionDen: 10, securityBits: 64 }), {
    message: /larger than 128/
  })
  for (const bad of [
    { fractionNum: -1, fractionDen: 5, securityBits: 40 },
    { fractionNum: 5, fractionDen: 5, securityBits: 40 },
    { fractionNum: 1, fractionDen: 0, securityBits: 40 },
    { fractionNum: 0.5, fractionDen: 5, securityBits: 40 },
    { fractionNum: 1, fractionDen: 5, securityBits: 0 },
    { fractionNum: 1, fractionDen: 5, securityBits: 1.5 },
    { fractionNum: 1, fractionDen: 5, securityBits: 1000 },
    { fractionNum: 1, fractionDen: 2e9, securityBits: 40 }
  ])
    t.throws(() => committeeSizeFor(bad), InvalidInputError, JSON.stringify(bad))
  t.throws(() => securityBitsAt(0, 1, 5), InvalidInputError)
  t.throws(() => securityBitsAt(MAX_COMMITTEE_SIZE + 1, 1, 5), InvalidInputError)
  t.throws(() => forgeProbability(7, 6, 5), InvalidInputError)
  // probabilities tiny enough to need scaling still come out finite and positive
  t.ok(forgeProbability(128, 1, 1000) > 0 && forgeProbability(128, 1, 1000) < 1e-200)
})

t.test('committeeSizeWith: fewer candidates, smaller committee, level reached recorded', async t => {
  t.same(committeeSizeWith(DEFAULT_ADVERSARY_MODEL, 1000), {
    k: 48,
    target: 48,
    securityBits: securityBitsAt(48, 1, 5)
  })
  t.same(committeeSizeWith(DEFAULT_ADVERSARY_MODEL, 7), { k: 7, target: 48, securityBits: 7 })
  t.same(committeeSizeWith(DEFAULT_ADVERSARY_MODEL, 0), { k: 0, target: 48, securityBits: 0 })
  t.throws(() => committeeSizeWith(DEFAULT_ADVERSARY_MODEL, -1), InvalidInputError)
})
