// Failed claims of a recorded round, for display. The chain has already verified the QC; this
// only reads which claims its failing verdicts named. It reads the QC as canonical CBOR rather
// than through one QC version's strict decoder, so a page keeps showing older rounds after the
// QC format moves on (v2 lists verdicts with their failed claims under `f`; later versions carry
// the claims the signers agreed on once, under `failedClaims` or `f`).
import { decode, type Canonical } from '../../encoding/canonical.ts'
import type { QcRecord } from '../../chain/types.ts'

const CLAIMS = new Set(['identity', 'firmware', 'os', 'containers', 'freshness'])

function claimsIn(v: Canonical | undefined, into: Set<string>): void {
  if (!Array.isArray(v)) return
  for (const c of v) if (typeof c === 'string' && (CLAIMS.has(c) || /^[a-z][a-z0-9-]{0,31}$/.test(c))) into.add(c)
}

function isMap(v: Canonical | undefined): v is Record<string, Canonical> {
  return v !== null && typeof v === 'object' && !(v instanceof Uint8Array) && !Array.isArray(v)
}

export function failedClaimsOfQc(qc: Pick<QcRecord, 'qc' | 'outcome'>): string[] {
  if (qc.outcome !== 'fail') return []
  const out = new Set<string>()
  try {
    const m = decode(qc.qc, { maxBytes: 64 << 10, maxDepth: 6, maxItems: 4096 })
    if (!isMap(m)) return []
    claimsIn(m.failedClaims, out)
    claimsIn(m.f, out)
    if (Array.isArray(m.verdicts)) for (const e of m.verdicts) if (isMap(e)) claimsIn(e.f, out)
  } catch {
    return []
  }
  return [...out].sort()
}

/** The outcome a recorded QC carries (every QC version names it under `outcome`), read leniently as above. */
export function outcomeOfQc(qc: Uint8Array): 'pass' | 'fail' | undefined {
  try {
    const m = decode(qc, { maxBytes: 64 << 10, maxDepth: 6, maxItems: 4096 })
    return isMap(m) && (m.outcome === 'pass' || m.outcome === 'fail') ? m.outcome : undefined
  } catch {
    return undefined
  }
}
