// The simulated population: deterministic keys and roles from one seed, so a run is repeatable
// bit for bit. Keys are real ed25519 keys (node ids are real peer ids; the chain checks every
// transaction signature and every verdict signature against them); only their seeds are derived
// from the run's seed instead of the system's randomness.
import { ed25519Signer, type VerdictSigner } from '../../attestation/quorum/keys.ts'
import { blsKeyFromSeed, type BlsSigner } from '../../attestation/quorum/bls.ts'
import { sha256, utf8 } from '../../encoding/bytes.ts'

/** A small deterministic PRNG (sfc32) seeded from sha256 of a label; enough for a simulation. */
export class Rng {
  #a: number
  #b: number
  #c: number
  #d: number
  constructor(seed: string, label: string) {
    const h = sha256(utf8.encode(`quorate/sim/rng\0${seed}\0${label}`))
    const v = new DataView(h.buffer, h.byteOffset, h.byteLength)
    this.#a = v.getUint32(0)
    this.#b = v.getUint32(4)
    this.#c = v.getUint32(8)
    this.#d = v.getUint32(12)
    for (let i = 0; i < 12; i++) this.next()
  }

  /** Uniform in [0, 1). */
  next(): number {
    const t = (((this.#a + this.#b) | 0) + this.#d) | 0
    this.#d = (this.#d + 1) | 0
    this.#a = this.#b ^ (this.#b >>> 9)
    this.#b = (this.#c + (this.#c << 3)) | 0
    this.#c = (this.#c << 21) | (this.#c >>> 11)
    this.#c = (this.#c + t) | 0
    return (t >>> 0) / 4294967296
  }

  int(n: number): number {
    return Math.floor(this.next() * n)
  }

  bytes(n: number): Uint8Array {
    const b = new Uint8Array(n)
    for (let i = 0; i < n; i++) b[i] = this.int(256)
    return b
  }

  /** Fisher–Yates, in place. */
  shuffle<T>(a: T[]): T[] {
    for (let i = a.length - 1; i > 0; i--) {
      const j = this.int(i + 1)
      ;[a[i], a[j]] = [a[j], a[i]]
    }
    return a
  }
}

export type Role = 'honest' | 'colluder' | 'bad'

export interface SimNode {
  readonly index: number
  readonly key: VerdictSigner
  readonly nodeId: string
  /** honest: good firmware, appraises truthfully. colluder: a verifier working for the adversary. bad: a node with bad firmware that wants to be certified. */
  readonly role: Role
  /** In the verifier pool from genesis. */
  readonly verifier: boolean
  /** Re-attests through the chain during the run. */
  readonly attester: boolean
  /** BLS verdict key (current rules, QC v3); made only when the run needs it. */
  readonly bls?: BlsSigner
  /** Next transaction sequence number of its chain account. */
  seq: number
}

export function simKey(seed: string, index: number): VerdictSigner {
  return ed25519Signer(sha256(utf8.encode(`quorate/sim/key\0${seed}\0${index}`)))
}

export interface Population {
  readonly nodes: readonly SimNode[]
  readonly byId: ReadonlyMap<string, SimNode>
  readonly verifiers: readonly SimNode[]
  readonly colluders: number
}

/**
 * `verifiers` nodes form the genesis verifier pool; exactly round(F·verifiers) of them, chosen
 * by the seed, collude. `bad` extra nodes (not verifiers) run bad firmware. The first `attesters`
 * honest verifiers (in a seeded order) also re-attest during the run.
 */
export function simBlsKey(seed: string, index: number): BlsSigner {
  return blsKeyFromSeed(sha256(utf8.encode(`quorate/sim/bls\0${seed}\0${index}`)))
}

export function makePopulation(o: {
  seed: string
  verifiers: number
  colluderFraction: number
  bad: number
  attesters: number
  bls?: boolean
  onProgress?: (done: number, total: number) => void
}): Population {
  const colluders = Math.round(o.colluderFraction * o.verifiers)
  const rng = new Rng(o.seed, 'roles')
  const order = rng.shuffle(Array.from({ length: o.verifiers }, (_, i) => i))
  const colluding = new Set(order.slice(0, colluders))
  const attesting = new Set(order.slice(colluders, colluders + o.attesters))
  const nodes: SimNode[] = []
  const total = o.verifiers + o.bad
  for (let i = 0; i < total; i++) {
    const key = simKey(o.seed, i)
    const verifier = i < o.verifiers
    const role: Role = !verifier ? 'bad' : colluding.has(i) ? 'colluder' : 'honest'
    const bls = o.bls === true ? simBlsKey(o.seed, i) : undefined
    nodes.push({
      index: i,
      key,
      nodeId: key.nodeId,
      role,
      verifier,
      attester: !verifier || attesting.has(i),
      seq: 0,
      ...(bls === undefined ? {} : { bls })
    })
    if (o.onProgress !== undefined && (i + 1) % 1000 === 0) o.onProgress(i + 1, total)
  }
  return { nodes, byId: new Map(nodes.map(n => [n.nodeId, n])), verifiers: nodes.filter(n => n.verifier), colluders }
}
