// docs/committee-security.svg: forge and blocked probability per round against committee size k
// for several colluding fractions F. Curves are the exact binomial figures (analytic.ts); points
// are measured with the product's own draw (selectCommittee) over a finite candidate pool. One
// draw of 64 ranked members serves every k ≤ 64 (the k lowest ranks are a prefix of the 64
// lowest) and every F (the colluders of a smaller F are a subset of a larger F's), so the points
// for all curves come from the same draws. Plain SVG written here; no plotting dependency.
import { selectCommittee } from '../../attestation/quorum/committee.ts'
import { sha256, utf8 } from '../../encoding/bytes.ts'
import { blockedProbability, forgeProbability, thresholdOf, type Fraction } from './analytic.ts'
import { Rng } from './population.ts'

export const PLOT_FRACTIONS: ReadonlyArray<{ f: Fraction; label: string; color: string }> = [
  { f: { num: 1, den: 10 }, label: 'F = 0.1', color: '#1b7837' },
  { f: { num: 1, den: 5 }, label: 'F = 0.2', color: '#2166ac' },
  { f: { num: 1, den: 3 }, label: 'F = 1/3', color: '#b2182b' }
]
export const PLOT_K_MAX = 64
/** Committee sizes at which measured points are drawn. */
export const PLOT_POINTS_K: readonly number[] = [4, 7, 10, 13, 16, 22, 28, 34, 40, 48]

export interface MonteCarloPoint {
  fraction: string
  k: number
  draws: number
  forge: number
  blocked: number
  forgeHits: number
  blockedHits: number
}

/** Fewer hits than this make a rate too noisy to draw (a single hit in 20,000 reads as 5e-5). */
export const MIN_HITS = 3

/**
 * Measures forge/blocked rates with `draws` committee draws from `candidates` ids, of which
 * round(F·candidates) collude, for every F in PLOT_FRACTIONS and every k in `ks`.
 */
export function monteCarlo(o: {
  draws: number
  candidates: number
  seed: string
  ks?: readonly number[]
  fractions?: ReadonlyArray<{ f: Fraction; label: string }>
  onProgress?: (m: string) => void
}): MonteCarloPoint[] {
  const ks = o.ks ?? PLOT_POINTS_K
  const fractions = o.fractions ?? PLOT_FRACTIONS
  const kMax = Math.max(...ks)
  const ids = Array.from({ length: o.candidates }, (_, i) => `sim-candidate-${i}`)
  // rank of each id in a seeded permutation: the first round(F·n) collude, nested across F
  const order = new Rng(o.seed, 'plot-colluders').shuffle(ids.map((_, i) => i))
  const pos = new Map<string, number>()
  order.forEach((idIndex, p) => {
    pos.set(ids[idIndex], p)
  })
  const cut = fractions.map(x => Math.round((x.f.num / x.f.den) * o.candidates))
  const forge = fractions.map(() => new Float64Array(kMax + 1))
  const blocked = fractions.map(() => new Float64Array(kMax + 1))
  const seedBase = utf8.encode(`quorate/sim/plot\0${o.seed}\0`)
  const counter = new Uint8Array(8)
  let lastReport = performance.now()
  for (let d = 0; d < o.draws; d++) {
    new DataView(counter.buffer).setBigUint64(0, BigInt(d))
    const committee = selectCommittee(sha256(seedBase, counter), ids, kMax)
    for (let fi = 0; fi < fractions.length; fi++) {
      let colluders = 0
      for (let k = 1; k <= committee.length; k++) {
        if ((pos.get(committee[k - 1]) ?? Infinity) < cut[fi]) colluders++
        const t = thresholdOf(k)
        if (colluders >= t) forge[fi][k]++
        if (colluders > k - t) blocked[fi][k]++
      }
    }
    if (o.onProgress !== undefined && performance.now() - lastReport > 5000) {
      lastReport = performance.now()
      o.onProgress(`plot: ${d + 1}/${o.draws} draws`)
    }
  }
  const out: MonteCarloPoint[] = []
  fractions.forEach((x, fi) => {
    for (const k of ks)
      out.push({
        fraction: x.label,
        k,
        draws: o.draws,
        forge: forge[fi][k] / o.draws,
        blocked: blocked[fi][k] / o.draws,
        forgeHits: forge[fi][k],
        blockedHits: blocked[fi][k]
      })
  })
  return out
}

const W = 900
const H = 600
const M = { left: 80, right: 200, top: 50, bottom: 60 }
const Y_MIN_EXP = -16

function x(k: number): number {
  return M.left + ((k - 1) / (PLOT_K_MAX - 1)) * (W - M.left - M.right)
}
function y(p: number): number {
  const e = Math.max(Y_MIN_EXP, Math.log10(Math.max(p, 10 ** Y_MIN_EXP)))
  return M.top + ((0 - e) / (0 - Y_MIN_EXP)) * (H - M.top - M.bottom)
}
const f2 = (v: number): string => v.toFixed(1)

function curve(points: Array<[number, number]>): string {
  return points.map(([k, p], i) => `${i === 0 ? 'M' : 'L'}${f2(x(k))},${f2(y(p))}`).join(' ')
}

/** The SVG document for the analytic curves and the measured points. */
export function renderPlot(points: readonly MonteCarloPoint[], note: string): string {
  const parts: string[] = []
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`
  )
  parts.push(`<rect width="${W}" height="${H}" fill="white"/>`)
  parts.push(
    `<text x="${W / 2 - 60}" y="24" text-anchor="middle" font-size="15">Per-round forge and blocked probability against committee size k</text>`
  )
  // grid and axes
  for (let e = 0; e >= Y_MIN_EXP; e -= 2) {
    parts.push(`<line x1="${M.left}" x2="${W - M.right}" y1="${f2(y(10 ** e))}" y2="${f2(y(10 ** e))}" stroke="#ddd"/>`)
    parts.push(`<text x="${M.left - 8}" y="${f2(y(10 ** e) + 4)}" text-anchor="end">1e${e}</text>`)
  }
  for (let k = 8; k <= PLOT_K_MAX; k += 8) {
    parts.push(`<line y1="${M.top}" y2="${H - M.bottom}" x1="${f2(x(k))}" x2="${f2(x(k))}" stroke="#eee"/>`)
    parts.push(`<text x="${f2(x(k))}" y="${H - M.bottom + 18}" text-anchor="middle">${k}</text>`)
  }
  parts.push(`<text x="${f2(x(1))}" y="${H - M.bottom + 18}" text-anchor="middle">1</text>`)
  parts.push(
    `<rect x="${M.left}" y="${M.top}" width="${W - M.left - M.right}" height="${H - M.top - M.bottom}" fill="none" stroke="#333"/>`
  )
  parts.push(
    `<text x="${(M.left + W - M.right) / 2}" y="${H - 18}" text-anchor="middle">committee size k (threshold ⌊2k/3⌋ + 1)</text>`
  )
  parts.push(
    `<text transform="translate(22 ${(M.top + H - M.bottom) / 2}) rotate(-90)" text-anchor="middle">probability per round (log scale)</text>`
  )
  // reference lines: 2^-40, k = 7 (legacy), k = 48 (current default)
  const p40 = 2 ** -40
  parts.push(
    `<line x1="${M.left}" x2="${W - M.right}" y1="${f2(y(p40))}" y2="${f2(y(p40))}" stroke="#555" stroke-dasharray="2,3"/>`
  )
  parts.push(`<text x="${W - M.right - 4}" y="${f2(y(p40) - 4)}" text-anchor="end" fill="#555">2^-40</text>`)
  for (const [k, label] of [
    [7, 'k = 7 (legacy)'],
    [48, 'k = 48 (F = 1/5, 40 bits)']
  ] as const) {
    parts.push(
      `<line y1="${M.top}" y2="${H - M.bottom}" x1="${f2(x(k))}" x2="${f2(x(k))}" stroke="#888" stroke-dasharray="6,4"/>`
    )
    parts.push(`<text x="${f2(x(k) + 4)}" y="${H - M.bottom - 8}" fill="#555">${label}</text>`)
  }
  // analytic curves
  for (const c of PLOT_FRACTIONS) {
    const ks = Array.from({ length: PLOT_K_MAX }, (_, i) => i + 1)
    const forge = ks.map(k => [k, forgeProbability(k, c.f)] as [number, number]).filter(([, p]) => p >= 10 ** Y_MIN_EXP)
    const blocked = ks
      .map(k => [k, blockedProbability(k, c.f)] as [number, number])
      .filter(([, p]) => p >= 10 ** Y_MIN_EXP)
    parts.push(`<path d="${curve(forge)}" fill="none" stroke="${c.color}" stroke-width="2"/>`)
    parts.push(
      `<path d="${curve(blocked)}" fill="none" stroke="${c.color}" stroke-width="1.5" stroke-dasharray="7,4"/>`
    )
  }
  // measured points with at least MIN_HITS hits (0 cannot be shown on a log scale; 1–2 hits are noise)
  for (const p of points) {
    const c = PLOT_FRACTIONS.find(z => z.label === p.fraction)
    if (c === undefined) continue
    if (p.forgeHits >= MIN_HITS)
      parts.push(
        `<circle cx="${f2(x(p.k))}" cy="${f2(y(p.forge))}" r="4" fill="${c.color}"><title>${p.fraction} k=${p.k} forge ${p.forge}</title></circle>`
      )
    if (p.blockedHits >= MIN_HITS)
      parts.push(
        `<rect x="${f2(x(p.k) - 4)}" y="${f2(y(p.blocked) - 4)}" width="8" height="8" fill="none" stroke="${c.color}" stroke-width="1.5"><title>${p.fraction} k=${p.k} blocked ${p.blocked}</title></rect>`
      )
  }
  // legend
  const lx = W - M.right + 16
  let ly = M.top + 10
  for (const c of PLOT_FRACTIONS) {
    parts.push(
      `<line x1="${lx}" x2="${lx + 28}" y1="${ly}" y2="${ly}" stroke="${c.color}" stroke-width="2"/><text x="${lx + 34}" y="${ly + 4}">${c.label} forge</text>`
    )
    ly += 18
    parts.push(
      `<line x1="${lx}" x2="${lx + 28}" y1="${ly}" y2="${ly}" stroke="${c.color}" stroke-width="1.5" stroke-dasharray="7,4"/><text x="${lx + 34}" y="${ly + 4}">${c.label} blocked</text>`
    )
    ly += 24
  }
  parts.push(
    `<circle cx="${lx + 14}" cy="${ly}" r="4" fill="#333"/><text x="${lx + 34}" y="${ly + 4}">forge, measured</text>`
  )
  ly += 18
  parts.push(
    `<rect x="${lx + 10}" y="${ly - 4}" width="8" height="8" fill="none" stroke="#333" stroke-width="1.5"/><text x="${lx + 34}" y="${ly + 4}">blocked, measured</text>`
  )
  ly += 30
  for (const line of note.split('\n')) {
    parts.push(`<text x="${lx}" y="${ly}" font-size="10" fill="#555">${escapeXml(line)}</text>`)
    ly += 13
  }
  parts.push('</svg>')
  return parts.join('\n') + '\n'
}

function escapeXml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
}

export function committeePlot(o: {
  draws: number
  candidates: number
  seed: string
  onProgress?: (m: string) => void
}): { svg: string; points: MonteCarloPoint[] } {
  const points = monteCarlo(o)
  const note = `curves: exact binomial\npoints: ${o.draws} draws of the\nproduct's selectCommittee from\n${o.candidates} candidates (seed\n"${o.seed}"); < ${MIN_HITS} hits not shown\nquorate sim plot`
  return { svg: renderPlot(points, note), points }
}
