// The two rule sets the simulator runs, as data the engine reads: the chain's genesis, the quorum
// rules injected into it, the committee size and how a QC is built. Everything here is the
// product's own code (attestation/quorum, chain/); the simulator only chooses which.
//
//   legacy  — today's certification before issue 10: k = 7, ed25519 verdicts in a QC v2, only the
//             node records its round, no deadline, no cooldown.
//   current — committees sized from genesis (adversary fraction, security bits), rounds that end
//             on chain, members may record. Pieces the chain does not have yet are listed in
//             `missing` (the report says so instead of pretending).
import {
  createQuorumRules, encodeQuorumCertificate, signVerdict, MAX_COMMITTEE_SIZE, type QuorumRules, type VerdictSigner
} from '../../attestation/quorum/index.ts'
import { DEFAULT_CERTIFICATION, type Genesis } from '../../chain/types.ts'
import { committeeSizeFor, type Fraction } from './analytic.ts'

export type RulesName = 'legacy' | 'current'

export interface QcInput {
  readonly nodeId: string
  readonly round: number
  readonly outcome: 'pass' | 'fail'
  /** The members whose verdicts go into the QC (threshold many, one side), in committee order. */
  readonly signers: readonly VerdictSigner[]
  readonly committee: readonly string[]
  readonly evidenceDigest: Uint8Array
  readonly failedClaims: readonly string[]
  /** Block time now (ms); verdicts that carry an expiry get now + ttl. */
  readonly now: number
  readonly ttlMs: number
}

export interface RuleSet {
  readonly name: RulesName
  /** Committee size the chain draws (before min with the candidates). */
  readonly k: number
  /** Adversary model the genesis sizes committees for. */
  readonly model: CurrentParams
  genesis (base: Genesis, ttlMs: number): Genesis
  quorumRules (): QuorumRules
  buildQc (q: QcInput): Uint8Array
  /** A committee member may submit the round's QC (current rules); otherwise only the node does. */
  readonly membersRecord: boolean
  /** Rounds close on chain after this many blocks without a QC; undefined: never (legacy). */
  readonly deadlineBlocks?: number
  /** The AK–EK binding is recorded on chain at the first certification; later rounds activate nothing. */
  readonly bindingOnChain: boolean
  /** What of the current rules this build of the chain lacks (empty for legacy). */
  readonly missing: readonly string[]
}

function qcV2 (q: QcInput): Uint8Array {
  const expiresAt = q.now + q.ttlMs
  return encodeQuorumCertificate({
    nodeId: q.nodeId,
    round: q.round,
    verdicts: q.signers.map(s => signVerdict({ nodeId: q.nodeId, round: q.round, pass: q.outcome === 'pass', appraisalDigest: q.evidenceDigest, failed: q.failedClaims, expiresAt }, s))
  })
}

export function legacyRules (): RuleSet {
  const k = 7
  return {
    name: 'legacy',
    k,
    model: { fraction: { num: 1, den: 5 }, securityBits: 0 },
    genesis: base => ({ ...base, committeeSize: k, certification: { rules: 'legacy' } }),
    quorumRules: () => createQuorumRules({ k }),
    buildQc: qcV2,
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

export function currentRules (model: CurrentParams): RuleSet {
  const sized = committeeSizeFor(model.fraction, model.securityBits, MAX_COMMITTEE_SIZE)
  const missing: string[] = []
  if (sized === undefined) missing.push(`no committee of at most ${MAX_COMMITTEE_SIZE} reaches ${model.securityBits} bits at F = ${model.fraction.num}/${model.fraction.den}; drawing ${MAX_COMMITTEE_SIZE}`)
  const k = sized ?? MAX_COMMITTEE_SIZE
  const deadline = model.roundDeadlineBlocks ?? DEFAULT_CERTIFICATION.roundDeadlineBlocks
  missing.push('AK–EK binding on chain (chain-rules): counted by the simulator from the first recorded pass')
  missing.push('BLS verdicts and QC v3 (quorum-crypto): QCs are ed25519 QC v2, about 110 bytes per verdict')
  return {
    name: 'current',
    k,
    model,
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
    buildQc: qcV2,
    membersRecord: true,
    deadlineBlocks: deadline,
    bindingOnChain: true,
    missing
  }
}
