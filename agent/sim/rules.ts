// The two rule sets the simulator runs, as data the engine reads: the chain's genesis, the quorum
// rules injected into it, the committee size and how a QC is built. Everything here is the
// product's own code (attestation/quorum, chain/); the simulator only chooses which.
//
//   legacy  — certification before issue 10: k = 7, only the node records its round, no deadline,
//             no cooldown, every member checks the AK–EK binding itself.
//   current — committees sized from genesis (adversary fraction, security bits), rounds that end
//             on chain (deadline, cooldown), members may record, BLS verdicts aggregated in a
//             QC v3 when this build of the chain takes them (probed, see qcVersionOf).
import {
  blsAggregate,
  createQuorumRules,
  encodeCertificate,
  normalizeClaims,
  proveKeyPossession,
  signerBitmap,
  verdictMessageSigningBytes,
  type QuorumRules
} from '../../attestation/quorum/index.ts'
import { parseBody } from '../../chain/bodies.ts'
import { DEFAULT_CERTIFICATION, type Genesis } from '../../chain/types.ts'
import { QuorateError } from '../../encoding/errors.ts'
import { committeeSizeFor, type Fraction } from './analytic.ts'
import type { SimNode } from './population.ts'

export type RulesName = 'legacy' | 'current'

export interface QcInput {
  readonly chainId: string
  readonly nodeId: string
  readonly round: number
  readonly outcome: 'pass' | 'fail'
  /** The committee in drawn order (a v3 signer bitmap indexes it). */
  readonly committee: readonly string[]
  /** The members whose verdicts go into the QC (threshold many, one side). */
  readonly signers: readonly SimNode[]
  readonly evidenceDigest: Uint8Array
  readonly failedClaims: readonly string[]
  /** Block time now (ms); v2 verdicts carry an expiry of now + ttl (v3: the chain sets it). */
  readonly now: number
  readonly ttlMs: number
}

export interface RuleSet {
  readonly name: RulesName
  /** Committee size the chain draws (before min with the candidates). */
  readonly k: number
  genesis(base: Genesis, ttlMs: number): Genesis
  quorumRules(): QuorumRules
  /** 2: ed25519 verdicts in a QC v2; 3: one BLS aggregate and a signer bitmap. */
  readonly qcVersion: 2 | 3
  buildQc(q: QcInput): Uint8Array
  /** node.register fields beyond the identity: a BLS key and its proof of possession (v3). */
  registerExtra(n: SimNode): { blsPublicKey?: Uint8Array; blsProof?: Uint8Array }
  /** A committee member may submit the round's QC (current rules); otherwise only the node does. */
  readonly membersRecord: boolean
  /** Rounds close on chain after this many blocks without a QC; undefined: never (legacy). */
  readonly deadlineBlocks?: number
  /** The AK–EK binding is recorded on chain at the first certification; later rounds activate nothing. */
  readonly bindingOnChain: boolean
  /** What of the current rules this build of the chain lacks (empty when complete). */
  readonly missing: readonly string[]
}

// QC v2 (ed25519 verdicts) is no longer in attestation/quorum: a chain build without BLS
// registration cannot be simulated by this build.
function qcV2(): Uint8Array {
  throw new QuorateError('sim: this chain build takes no BLS key, and QC v2 is gone from attestation/quorum')
}

/** Every signer signs the same verdict message; the QC carries their aggregate and a bitmap. */
function qcV3(q: QcInput): Uint8Array {
  const failedClaims = normalizeClaims(q.failedClaims)
  const message = verdictMessageSigningBytes({
    chainId: q.chainId,
    nodeId: q.nodeId,
    round: q.round,
    outcome: q.outcome,
    evidenceDigest: q.evidenceDigest,
    failedClaims
  })
  const pos = new Map(q.committee.map((id, i) => [id, i]))
  const signatures = q.signers.map(s => {
    if (s.bls === undefined) throw new QuorateError(`sim: ${s.nodeId} has no BLS key`)
    return s.bls.sign(message)
  })
  const indices = q.signers.map(s => {
    const i = pos.get(s.nodeId)
    if (i === undefined) throw new QuorateError(`sim: ${s.nodeId} is not on the committee`)
    return i
  })
  return encodeCertificate({
    outcome: q.outcome,
    evidenceDigest: q.evidenceDigest,
    failedClaims,
    signers: signerBitmap(q.committee.length, indices),
    signature: blsAggregate(signatures)
  })
}

function blsExtra(n: SimNode): { blsPublicKey?: Uint8Array; blsProof?: Uint8Array } {
  if (n.bls === undefined) throw new QuorateError(`sim: ${n.nodeId} has no BLS key`)
  return { blsPublicKey: n.bls.publicKey, blsProof: proveKeyPossession(n.bls, n.nodeId) }
}

/**
 * Whether this build of the chain registers BLS keys (node.register takes blsPublicKey and
 * blsProof): then it checks QC v3 and candidates are the nodes with a registered key.
 */
export function chainTakesBls(): boolean {
  try {
    parseBody('node.register', {
      nodeId: '12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA',
      ekCertificate: new Uint8Array([0x30, 2, 5, 0]),
      akPublic: new Uint8Array([1]),
      addrs: [],
      blsPublicKey: new Uint8Array(48),
      blsProof: new Uint8Array(96)
    })
    return true
  } catch {
    return false
  }
}

/**
 * Legacy: k = 7, no deadline, no cooldown, only the node records, each member checks the AK–EK
 * binding itself. The verdict format is the chain build's (a chain that checks QC v3 checks it
 * under both rule sets), so the hole shown is the rules', not the signature scheme's.
 */
export function legacyRules(): RuleSet {
  const k = 7
  const v3 = chainTakesBls()
  return {
    name: 'legacy',
    k,
    // certTtlMs: with QC v3 the chain, not the verdicts, sets how long a pass certifies
    genesis: (base, ttlMs) => ({ ...base, committeeSize: k, certification: { rules: 'legacy', certTtlMs: ttlMs } }),
    quorumRules: () => createQuorumRules({ k }),
    qcVersion: v3 ? 3 : 2,
    buildQc: v3 ? qcV3 : qcV2,
    registerExtra: v3 ? blsExtra : () => ({}),
    membersRecord: false,
    bindingOnChain: false,
    missing: []
  }
}

/** Genesis parameters of the current rules the simulation runs with (the chain's defaults unless given). */
export interface CurrentParams {
  readonly fraction: Fraction
  readonly securityBits: number
  readonly roundDeadlineBlocks?: number
  readonly cooldownBaseBlocks?: number
  readonly cooldownMaxBlocks?: number
}

export function currentRules(model: CurrentParams): RuleSet {
  // throws (refusing the model, as the chain's genesis check does) when no size reaches the level
  const k = committeeSizeFor(model.fraction, model.securityBits)
  const deadline = model.roundDeadlineBlocks ?? DEFAULT_CERTIFICATION.roundDeadlineBlocks
  const v3 = chainTakesBls()
  const missing: string[] = []
  if (!v3)
    missing.push(
      "BLS verdicts and QC v3 on chain: this build's node.register takes no BLS key, so QCs are ed25519 QC v2 (about 110 bytes per verdict)"
    )
  return {
    name: 'current',
    k,
    genesis: (base, ttlMs) => ({
      ...base,
      certification: {
        rules: 'current',
        adversaryFraction: { num: model.fraction.num, den: model.fraction.den },
        securityBits: model.securityBits,
        roundDeadlineBlocks: deadline,
        cooldownBaseBlocks: model.cooldownBaseBlocks ?? DEFAULT_CERTIFICATION.cooldownBaseBlocks,
        cooldownMaxBlocks: model.cooldownMaxBlocks ?? DEFAULT_CERTIFICATION.cooldownMaxBlocks,
        certTtlMs: ttlMs
      }
    }),
    quorumRules: () => createQuorumRules({ k }),
    qcVersion: v3 ? 3 : 2,
    buildQc: v3 ? qcV3 : qcV2,
    registerExtra: v3 ? blsExtra : () => ({}),
    membersRecord: true,
    deadlineBlocks: deadline,
    bindingOnChain: true,
    missing
  }
}
