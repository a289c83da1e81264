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
import { appraise, encodeEvidence, decodeEvidence, parsePublic, publicToKeyObject, parseSignature } from '../attestation/index.ts'
import { ecdsaDer } from '../attestation/quote.ts'
import { scenario } from '../test/attestation/scenario.ts'
import { softAk } from '../test/attestation/forge.ts'

// Rates per wall-clock second, per CPU second of this process, and per CPU second in the best of
// 10 short rounds: the machine is shared, so the best round is the closest estimate of one
// dedicated core (interference only ever slows a round down).
function rate (seconds: number, fn: (i: number) => void): { perSec: number, perCpuSec: number, bestRoundPerCpuSec: number, n: number } {
  for (let i = 0; i < 200; i++) fn(i) // warm-up
  const rounds = 10
  let n = 0
  let wall = 0
  let cpu = 0
  let best = 0
  for (let r = 0; r < rounds; r++) {
    const t0 = performance.now()
    const c0 = process.cpuUsage()
    const end = t0 + (seconds * 1000) / rounds
    let m = 0
    while (performance.now() < end) { for (let k = 0; k < 50; k++) fn(n + m++) }
    const c = process.cpuUsage(c0)
    const dc = (c.user + c.system) / 1e6
    wall += (performance.now() - t0) / 1000
    cpu += dc
    n += m
    best = Math.max(best, m / dc)
  }
  return { perSec: Math.round(n / wall), perCpuSec: Math.round(n / cpu), bestRoundPerCpuSec: Math.round(best), n }
}

export async function run (opts: { seconds?: number, quotes?: number } = {}): Promise<Record<string, unknown>> {
  const seconds = opts.seconds ?? 2
  const ak = softAk()
  const cases = Array.from({ length: opts.quotes ?? 256 }, () => scenario({}, ak))
  const refs = cases[0].refs
  const wire = cases.map(c => encodeEvidence(c.evidence))
  for (const c of cases) {
    const a = appraise(c.evidence, refs, { nonce: c.nonce })
    if (!a.ok) throw new Error(`bench scenario does not pass: ${a.failures.join('; ')}`)
  }
  const appraiseOnly = rate(seconds, i => { const c = cases[i % cases.length]; appraise(c.evidence, refs, { nonce: c.nonce }) })
  const decodeAndAppraise = rate(seconds, i => { const k = i % cases.length; appraise(decodeEvidence(wire[k]), refs, { nonce: cases[k].nonce }) })
  const key = publicToKeyObject(parsePublic(cases[0].evidence.akPublic))
  const sigs = cases.map(c => { const s = parseSignature(c.evidence.quote.signature); return s.sigAlg === 'ecdsa' ? ecdsaDer(s.r, s.s) : new Uint8Array() })
  const ecdsa = rate(seconds, i => { const k = i % cases.length; cryptoVerify('sha256', cases[k].evidence.quote.attest, key, sigs[k]) })
  const first = cases[0].evidence
  return {
    target: 'appraisals/s >= 8000 on one core',
    appraisalsPerSec: appraiseOnly.bestRoundPerCpuSec,
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
