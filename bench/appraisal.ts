// Appraisals per second on one core: a quote over PCRs 0–9 + 13, the 25-event OVMF fixture log,
// a two-launch container log and reference values (EK chain, firmware/OS RefSets, images). Each
// appraisal uses a different quote (fresh nonce, new signature), so every one pays a full ECDSA
// P-256 verify; EK chain results, AK keys, reference indexes and the parsed log are cached by
// content, as in a verifier that re-appraises the same node. Target (issue 2): ≥ 8,000/s.
// Also reported: bare node:crypto ECDSA P-256 verifies/s on the same data (the ceiling), and
// decode (canonical CBOR) + appraise. `appraisalsPerSec` is the best-round CPU-time rate (see
// rate()); wall-clock and whole-run CPU rates are reported next to it. Numbers only; nothing asserted.
//   node_modules/.bin/node bench/appraisal.ts
import { fileURLToPath } from 'node:url'
import { verify as cryptoVerify } from 'node:crypto'
import {
  appraise,
  encodeEvidence,
  decodeEvidence,
  parsePublic,
  publicToKeyObject,
  parseSignature
} from '../attestation/index.ts'
import { ecdsaDer } from '../attestation/quote.ts'
import { scenario } from '../test/attestation/scenario.ts'
import { softAk } from '../test/attestation/forge.ts'

// Rates per wall-clock second, per CPU second of this process, and per CPU second in the best of
// 10 short rounds: the machine is shared, so the best round is the closest estimate of one
// dedicated core (interference only ever slows a round down).
type Rate = { perSec: number; perCpuSec: number; bestRoundPerCpuSec: number; n: number }

function rate(seconds: number, fn: (i: number) => void): Rate {
  return rates(seconds, [fn])[0]
}

// Several functions measured in alternating rounds, so that they see the same machine load and
// their ratio means something on a shared machine.
function rates(seconds: number, fns: ReadonlyArray<(i: number) => void>): Rate[] {
  for (const fn of fns) for (let i = 0; i < 200; i++) fn(i) // warm-up
  const rounds = 10
  const acc = fns.map(() => ({ n: 0, wall: 0, cpu: 0, best: 0 }))
  for (let r = 0; r < rounds; r++) {
    for (const [j, fn] of fns.entries()) {
      const a = acc[j]
      const t0 = performance.now()
      const c0 = process.cpuUsage()
      const end = t0 + (seconds * 1000) / rounds
      let m = 0
      while (performance.now() < end) {
        for (let k = 0; k < 50; k++) fn(a.n + m++)
      }
      const c = process.cpuUsage(c0)
      const dc = (c.user + c.system) / 1e6
      a.wall += (performance.now() - t0) / 1000
      a.cpu += dc
      a.n += m
      a.best = Math.max(a.best, m / dc)
    }
  }
  return acc.map(a => ({
    perSec: Math.round(a.n / a.wall),
    perCpuSec: Math.round(a.n / a.cpu),
    bestRoundPerCpuSec: Math.round(a.best),
    n: a.n
  }))
}

export async function run(opts: { seconds?: number; quotes?: number } = {}): Promise<Record<string, unknown>> {
  const seconds = opts.seconds ?? 2
  const ak = softAk()
  const cases = Array.from({ length: opts.quotes ?? 256 }, () => scenario({}, ak))
  const refs = cases[0].refs
  const wire = cases.map(c => encodeEvidence(c.evidence))
  for (const c of cases) {
    const a = appraise(c.evidence, refs, { nonce: c.nonce })
    if (!a.ok) throw new Error(`bench scenario does not pass: ${a.failures.join('; ')}`)
  }
  const key = publicToKeyObject(parsePublic(cases[0].evidence.akPublic))
  const sigs = cases.map(c => {
    const s = parseSignature(c.evidence.quote.signature)
    return s.sigAlg === 'ecdsa' ? ecdsaDer(s.r, s.s) : new Uint8Array()
  })
  // appraisals and bare verifies in alternating rounds (same load for both)
  const [appraiseOnly, ecdsa] = rates(seconds, [
    i => {
      const c = cases[i % cases.length]
      appraise(c.evidence, refs, { nonce: c.nonce })
    },
    i => {
      const k = i % cases.length
      cryptoVerify('sha256', cases[k].evidence.quote.attest, key, sigs[k])
    }
  ])
  const decodeAndAppraise = rate(seconds, i => {
    const k = i % cases.length
    appraise(decodeEvidence(wire[k]), refs, { nonce: cases[k].nonce })
  })
  const first = cases[0].evidence
  return {
    target: 'appraisals/s >= 8000 on one core',
    appraisalsPerSec: appraiseOnly.bestRoundPerCpuSec,
    // appraisal rate as a share of the bare-verify rate (measured in alternating rounds): the
    // signature is the floor, the rest is our work; less load-sensitive than either rate alone
    shareOfBareVerifyRate: Math.round((100 * appraiseOnly.bestRoundPerCpuSec) / ecdsa.bestRoundPerCpuSec) / 100,
    appraisals: appraiseOnly,
    decodeAndAppraise,
    ecdsaP256Verify: ecdsa,
    evidenceBytes: wire[0].length,
    eventLogEvents: 25,
    eventLogBytes: first.eventLog?.length,
    seconds
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  process.stdout.write(JSON.stringify(await run(), null, 2) + '\n')
}
