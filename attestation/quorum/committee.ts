// Committee selection and BFT threshold math. Pure and deterministic: the chain re-derives the
// committee from the same seed when it checks a quorum certificate, so node, members and chain
// must agree bit for bit.
import { sha256, utf8, compare } from '../../encoding/bytes.ts'
import { InvalidInputError } from '../../encoding/errors.ts'

/** Committee size when none is configured (DESIGN.md: default 7, tolerating 2 liars). */
export const DEFAULT_COMMITTEE_SIZE = 7

/** Largest committee we accept anywhere (bounds QC size and verification work). */
export const MAX_COMMITTEE_SIZE = 64

const SELECT_DOMAIN = utf8.encode('quorate/committee-rank/v1')

/** Votes needed on one side: strictly more than 2/3 of the committee, ⌊2k/3⌋ + 1. */
export function threshold (k: number): number {
  checkSize(k)
  return Math.floor((2 * k) / 3) + 1
}

/** Liars tolerated by a committee of k: f = ⌊(k − 1)/3⌋ (k ≥ 3f + 1). */
export function faultTolerance (k: number): number {
  checkSize(k)
  return Math.floor((k - 1) / 3)
}

function checkSize (k: number): void {
  if (!Number.isSafeInteger(k) || k < 1) throw new InvalidInputError(`committee size must be a positive integer, got ${k}`)
}

/**
 * Draws min(k, |candidates|) distinct members. Each candidate is ranked by
 * sha256(domain ‖ seed ‖ nodeId) and the k lowest ranks win: with sha256 as a random oracle every
 * k-subset is equally likely, there is no modulo bias, and the result does not depend on the order
 * of `candidates`. Duplicate candidate ids count once. Returned in rank order.
 */
export function selectCommittee (seed: Uint8Array, candidates: readonly string[], k: number): string[] {
  if (!(seed instanceof Uint8Array) || seed.length < 16) throw new InvalidInputError('committee seed must be at least 16 bytes')
  checkSize(k)
  const seen = new Set<string>()
  const ranked: { id: string, rank: Uint8Array }[] = []
  for (const id of candidates) {
    if (typeof id !== 'string' || id === '') throw new InvalidInputError('committee candidate ids must be non-empty strings')
    if (seen.has(id)) continue
    seen.add(id)
    const idBytes = utf8.encode(id)
    // Length-prefix the seed so (seed, id) pairs cannot collide by shifting bytes between them.
    const len = new Uint8Array([seed.length >> 8, seed.length & 0xff])
    ranked.push({ id, rank: sha256(SELECT_DOMAIN, len, seed, idBytes) })
  }
  ranked.sort((a, b) => compare(a.rank, b.rank) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
  return ranked.slice(0, Math.min(k, ranked.length)).map(r => r.id)
}
