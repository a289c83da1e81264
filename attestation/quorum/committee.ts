// Committee selection and BFT threshold math. Pure and deterministic: the chain re-derives the
// committee from the same seed when it checks a quorum certificate, so node, members and chain
// must agree bit for bit.
import { createHash } from 'node:crypto'
import { utf8 } from '../../encoding/bytes.ts'
import { InvalidInputError } from '../../encoding/errors.ts'

/**
 * Committee size of the legacy rules (fixed k = 7, tolerating 2 liars). The current rules derive
 * k from genesis (sizing.ts committeeSizeFor); this stays only for legacy genesis files.
 */
export const DEFAULT_COMMITTEE_SIZE = 7

/**
 * Largest committee we accept anywhere (bounds QC size and verification work). 128 leaves room
 * above the ≈ 48 that F = 1/5 at 40 bits needs (sizing.ts).
 */
export const MAX_COMMITTEE_SIZE = 128

/** Smallest committee the sizing rule returns: 3f + 1 with f ≥ 1, so one liar is tolerated. */
export const MIN_COMMITTEE_SIZE = 4

const SELECT_DOMAIN = utf8.encode('quorate/committee-rank/v1')

/** Votes needed on one side: strictly more than 2/3 of the committee, ⌊2k/3⌋ + 1. */
export function threshold(k: number): number {
  checkSize(k)
  return Math.floor((2 * k) / 3) + 1
}

/** Liars tolerated by a committee of k: f = ⌊(k − 1)/3⌋ (k ≥ 3f + 1). */
export function faultTolerance(k: number): number {
  checkSize(k)
  return Math.floor((k - 1) / 3)
}

function checkSize(k: number): void {
  if (!Number.isSafeInteger(k) || k < 1)
    throw new InvalidInputError(`committee size must be a positive integer, got ${k}`)
}

/**
 * Draws min(k, |candidates|) distinct members. Each candidate is ranked by
 * sha256(domain ‖ seed ‖ nodeId) and the k lowest ranks win: with sha256 as a random oracle every
 * k-subset is equally likely, there is no modulo bias, and the result does not depend on the order
 * of `candidates`. Duplicate candidate ids count once. Returned in rank order.
 */
export function selectCommittee(seed: Uint8Array, candidates: readonly string[], k: number): string[] {
  if (!(seed instanceof Uint8Array) || seed.length < 16 || seed.length > 0xffff)
    throw new InvalidInputError('committee seed must be 16..65535 bytes')
  checkSize(k)
  // Length-prefix the seed so (seed, id) pairs cannot collide by shifting bytes between them.
  // The hash state after domain ‖ len ‖ seed is computed once and copied per candidate.
  const prefix = createHash('sha256')
    .update(SELECT_DOMAIN)
    .update(new Uint8Array([seed.length >> 8, seed.length & 0xff]))
    .update(seed)
  const seen = new Set<string>()
  // Keep only the k best ranks (k is small): O(n·k) worst case, no full sort of n hashes.
  const best: { id: string; rank: Buffer }[] = []
  for (const id of candidates) {
    if (typeof id !== 'string' || id === '')
      throw new InvalidInputError('committee candidate ids must be non-empty strings')
    if (seen.has(id)) continue
    seen.add(id)
    const rank = prefix.copy().update(id, 'utf8').digest()
    if (best.length === k && order(rank, id, best[k - 1]) >= 0) continue
    let i = best.length === k ? k - 1 : best.length
    if (best.length === k) best.pop()
    while (i > 0 && order(rank, id, best[i - 1]) < 0) i--
    best.splice(i, 0, { id, rank })
  }
  return best.map(r => r.id)
}

function order(rank: Buffer, id: string, other: { id: string; rank: Buffer }): number {
  return Buffer.compare(rank, other.rank) || (id < other.id ? -1 : id > other.id ? 1 : 0)
}
