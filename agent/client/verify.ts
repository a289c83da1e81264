// The client's checks on chain data about one node, data in, data out (STYLE §3): state values
// (already proven against a verified header by the caller's VerifiedChain) in, a branded
// CertifiedNode / VerifiedNode out. Two steps, because a client reads many node records to pick
// the fastest node but re-verifies the QC only of the nodes it talks to:
//   checkNodeRecord — node/<id>: certified, unexpired at the verified header's time, not revoked
//                     or failed, an https endpoint and a TLS key hash recorded by the certification
//   checkQc         — qc/<id> and the round's record (req/<id> or the archive rnd/<id>/<round>):
//                     the QC is the one the record's qcHash names, its round is the certifying round,
//                     and it verifies with the quorum rules against the round's committee (kept by
//                     the chain and checked to be in its seed's draw order; re-drawn from seed
//                     and candidates here under legacy rules)
//                     with each member's registered BLS key — outcome pass.
import { decode, type Canonical } from '../../encoding/canonical.ts'
import { equal, sha256, toHex } from '../../encoding/bytes.ts'
import type { AttestRequestRecord, NodeRecord, QcRecord, RoundArchive } from '../../chain/types.ts'
import type { QuorumRules } from '../../attestation/quorum/index.ts'
import { NoEndpointError, NodeNotCertifiedError, QcCheckError, UnverifiedChainError } from './errors.ts'

/** A state value a VerifiedChain proved, with the verified header it was proven against. */
export interface ProvenRead {
  /** undefined: the chain answered "absent" (absence is not proven: it can only cause a refusal). */
  readonly value: Uint8Array | undefined
  /** Height of the state the value is from, and that block's time (Unix ms, from a verified header). */
  readonly height: number
  readonly time: number
}

declare const certifiedBrand: unique symbol
/** A node record that passed checkNodeRecord. */
export interface CertifiedNode {
  readonly [certifiedBrand]: true
  readonly nodeId: string
  readonly endpoint: URL
  /** sha256 of the TLS SPKI the certifying round bound. */
  readonly tlsKey: Uint8Array
  readonly expiresAt: number
  readonly round: number
  readonly qcHash: Uint8Array
  /** sha256 of the record bytes: a later read with another hash means the record changed. */
  readonly recordHash: Uint8Array
  /** The verified height and block time the record was read at. */
  readonly height: number
  readonly time: number
  readonly record: NodeRecord
}

declare const verifiedBrand: unique symbol
/** A certified node whose QC verified here too. */
export interface VerifiedNode extends Omit<CertifiedNode, typeof certifiedBrand> {
  readonly [verifiedBrand]: true
  readonly committee: readonly string[]
  readonly signers: readonly string[]
  readonly threshold: number
}

const LIMITS = { maxBytes: 1 << 20, maxItems: 1 << 16 }

function decodeRecord<T>(bytes: Uint8Array, what: string): T {
  let v: Canonical
  try {
    v = decode(bytes, LIMITS)
  } catch (err) {
    throw new UnverifiedChainError(`${what} does not decode: ${(err as Error).message}`, { cause: err })
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v) || v instanceof Uint8Array)
    throw new UnverifiedChainError(`${what} is not a record`)
  return v as T
}

/**
 * The node record's verdict: certified and unexpired at the verified block time `read.time`,
 * with an https endpoint and a 32-byte TLS key hash. Throws NodeNotCertifiedError / NoEndpointError.
 */
export function checkNodeRecord(nodeId: string, read: ProvenRead): CertifiedNode {
  if (read.value === undefined) throw new NodeNotCertifiedError(nodeId, 'not registered on chain')
  const rec = decodeRecord<NodeRecord>(read.value, `node/${nodeId}`)
  if (rec.nodeId !== nodeId) throw new UnverifiedChainError(`node/${nodeId} holds the record of ${String(rec.nodeId)}`)
  if (rec.status !== 'certified') {
    const why = rec.statusReason === undefined ? '' : ` (${rec.statusReason})`
    throw new NodeNotCertifiedError(nodeId, `status is ${rec.status} since height ${rec.statusHeight}${why}`)
  }
  if (typeof rec.expiresAt !== 'number' || rec.expiresAt <= read.time)
    throw new NodeNotCertifiedError(
      nodeId,
      `certification expired at ${new Date(rec.expiresAt ?? 0).toISOString()} (verified block time at height ${read.height}: ${new Date(read.time).toISOString()})`
    )
  if (typeof rec.round !== 'number' || !(rec.qcHash instanceof Uint8Array))
    throw new NodeNotCertifiedError(nodeId, 'the record names no certifying round or QC')
  if (!(rec.tlsKey instanceof Uint8Array) || rec.tlsKey.byteLength !== 32)
    throw new NoEndpointError(nodeId, 'its certification binds no TLS key (the round was not asked to bind one)')
  if (typeof rec.endpoint !== 'string') throw new NoEndpointError(nodeId, 'it registered no client endpoint')
  let endpoint: URL
  try {
    endpoint = new URL(rec.endpoint)
  } catch {
    throw new NoEndpointError(nodeId, `its endpoint ${JSON.stringify(rec.endpoint.slice(0, 100))} is not a URL`)
  }
  if (endpoint.protocol !== 'https:')
    throw new NoEndpointError(nodeId, `its endpoint ${endpoint.origin} is not https: the TLS key cannot be checked`)
  return {
    nodeId,
    endpoint,
    tlsKey: rec.tlsKey,
    expiresAt: rec.expiresAt,
    round: rec.round,
    qcHash: rec.qcHash,
    recordHash: sha256(read.value),
    height: read.height,
    time: read.time,
    record: rec
  } as CertifiedNode
}

/** The certifying round as the chain keeps it: the open/last request, or its archive once ended. */
export interface RoundInfo {
  readonly seed: Uint8Array
  readonly k: number
  /** Current rules: the committee in drawn order. */
  readonly committee?: readonly string[]
  /** Legacy rules: the candidate snapshot the committee is drawn from. */
  readonly candidates?: readonly string[]
  /** What the request asked the round to bind (only on req/<id>). */
  readonly tlsKey?: Uint8Array
}

/** Reads the round out of req/<id> (when it is still the certifying round) or rnd/<id>/<round>. */
export function roundFrom(nodeId: string, round: number, bytes: Uint8Array, key: string): RoundInfo {
  const r = decodeRecord<AttestRequestRecord & RoundArchive>(bytes, key)
  if (r.nodeId !== nodeId || r.round !== round)
    throw new QcCheckError(nodeId, `${key} is round ${String(r.round)} of ${String(r.nodeId)}, not round ${round}`)
  if (!(r.seed instanceof Uint8Array)) throw new QcCheckError(nodeId, `${key}: the round has no seed`)
  const committee = Array.isArray(r.committee) ? r.committee : undefined
  const candidates = Array.isArray(r.candidates) ? r.candidates : undefined
  const k = typeof r.k === 'number' ? r.k : (committee?.length ?? 0)
  if (committee === undefined && candidates === undefined)
    throw new QcCheckError(nodeId, `${key}: the round keeps neither its committee nor its candidates`)
  return {
    seed: r.seed,
    k,
    ...(committee === undefined ? {} : { committee }),
    ...(candidates === undefined ? {} : { candidates }),
    ...(r.tlsKey instanceof Uint8Array ? { tlsKey: r.tlsKey } : {})
  }
}

/**
 * The QC check. `qcBytes` is qc/<id>, `memberKeys` each committee member's (or, under legacy
 * rules, each candidate's) registered BLS key, read with proofs. Throws QcCheckError.
 */
export function checkQc(
  node: CertifiedNode,
  input: {
    chainId: string
    qcBytes: Uint8Array | undefined
    round: RoundInfo
    memberKeys: ReadonlyMap<string, Uint8Array>
    rules: Pick<QuorumRules, 'verifyCertificate' | 'drawCommittee'>
  }
): VerifiedNode {
  const id = node.nodeId
  if (input.qcBytes === undefined) throw new QcCheckError(id, 'the chain holds no QC for it')
  const q = decodeRecord<QcRecord>(input.qcBytes, `qc/${id}`)
  if (q.nodeId !== id || q.round !== node.round)
    throw new QcCheckError(
      id,
      `the QC on chain is for round ${String(q.round)}, the certification is round ${node.round}`
    )
  if (!(q.qc instanceof Uint8Array) || !equal(sha256(q.qc), node.qcHash))
    throw new QcCheckError(id, `the QC's hash is not the record's qcHash ${toHex(node.qcHash).slice(0, 16)}…`)
  if (input.round.tlsKey !== undefined && !equal(input.round.tlsKey, node.tlsKey))
    throw new QcCheckError(id, 'the certifying round bound another TLS key than the record holds')
  const kept = input.round.committee
  if (kept !== undefined) {
    // the chain kept the drawn committee (its candidate snapshot is gone): it must at least be in
    // the order the round's seed ranks its members, without the node itself — a committee the
    // seed did not draw could not come out in that order except by chance (1/k!)
    let order: readonly string[]
    try {
      order = input.rules.drawCommittee({ seed: input.round.seed, nodeId: id, candidates: kept, k: kept.length })
    } catch (err) {
      throw new QcCheckError(id, `the round's committee cannot be drawn: ${(err as Error).message}`, { cause: err })
    }
    if (order.length !== kept.length || order.some((m, i) => m !== kept[i]))
      throw new QcCheckError(id, "the round's committee is not in the order its seed draws (or lists the node itself)")
  }
  const ids = input.round.committee ?? input.round.candidates ?? []
  const candidates = ids.map(m => ({ nodeId: m, blsPublicKey: input.memberKeys.get(m) ?? new Uint8Array(0) }))
  let out: ReturnType<QuorumRules['verifyCertificate']>
  try {
    out = input.rules.verifyCertificate({
      chainId: input.chainId,
      nodeId: id,
      round: node.round,
      seed: input.round.seed,
      candidates,
      k: input.round.k,
      ...(input.round.committee === undefined ? {} : { committee: input.round.committee }),
      qc: q.qc
    })
  } catch (err) {
    throw new QcCheckError(id, (err as Error).message, { cause: err })
  }
  if (out.outcome !== 'pass') throw new QcCheckError(id, `the QC is a failing one (${out.failedClaims.join(', ')})`)
  return {
    ...node,
    committee: out.committee,
    signers: out.signers,
    threshold: out.threshold
  } as unknown as VerifiedNode
}
