// Contracts of the chain: transaction types and bodies, stored records, results, and the
// injected quorum rules. Everything here is plain data; see app.ts for the state machine.
import type { Canonical } from '../encoding/canonical.ts'

export const TX_VERSION = 1
/** Largest transaction accepted, in bytes (checked before decoding). */
export const MAX_TX_BYTES = 64 * 1024
/** Committee size k when the genesis names none (legacy rules only; current rules derive k). */
export const DEFAULT_COMMITTEE_SIZE = 7
/** What a chain id may be: 1–50 characters A-Z a-z 0-9 . _ - */
export const CHAIN_ID_RE = /^[A-Za-z0-9._-]{1,50}$/

export const TX_TYPES = [
  'vendor.register',
  'vendor.ekca.publish',
  'vendor.ekca.revoke',
  'firmware.publish',
  'firmware.revoke',
  'os.publish',
  'os.revoke',
  'image.publish',
  'image.revoke',
  'node.register',
  'attest.request',
  'attest.record',
  'verifier.fault',
  'app.publish',
  'app.revoke',
  'usage.record'
] as const
export type TxType = (typeof TX_TYPES)[number]

export type HashBank = 'sha1' | 'sha256' | 'sha384' | 'sha512'
/** Allowed values for one PCR: final (golden) values and/or digests of individual events. */
export interface PcrRef {
  golden?: Uint8Array[]
  events?: Uint8Array[]
}
/** PCR index as a decimal string ("0".."23") → allowed values. */
export type PcrRefs = Record<string, PcrRef>
/** One named, versioned set of reference values (CONTRACTS.md `RefSet`). For firmware, name = "<vendor>/<platform>". */
export interface RefSet {
  name: string
  version: string
  bank: HashBank
  pcrs: PcrRefs
}
/** What a verifier appraises against (CONTRACTS.md `ReferenceValues`); only active (unrevoked) entries. */
export interface ReferenceValues {
  ekCas: Uint8Array[]
  firmware: RefSet[]
  os: RefSet[]
}

export interface VendorRegisterBody {
  name: string
}
export interface EkCaPublishBody {
  vendor: string
  certificate: Uint8Array
}
export interface EkCaRevokeBody {
  vendor: string
  fingerprint: Uint8Array
}
export interface FirmwarePublishBody {
  vendor: string
  platform: string
  version: string
  bank: HashBank
  pcrs: PcrRefs
}
export interface FirmwareRevokeBody {
  vendor: string
  platform: string
  version: string
}
export interface OsPublishBody {
  name: string
  version: string
  bank: HashBank
  pcrs: PcrRefs
}
export interface OsRevokeBody {
  name: string
  version: string
}
export interface ImagePublishBody {
  name: string
  digest: string
  cid: string
  size: number
}
export interface ImageRevokeBody {
  name: string
  digest: string
}
/**
 * `platform` is "<vendor>/<platform>" of the firmware it runs, `os` the OS name. They decide which
 * revocations end its certification; a node that names none is affected by every revocation.
 */
export interface NodeRegisterBody {
  nodeId: string
  ekCertificate: Uint8Array
  akPublic: Uint8Array
  addrs: string[]
  platform?: string
  os?: string
  /** The node's BLS verdict key (48 bytes) and its proof of possession bound to the node id (96 bytes); both or neither. A node without one is never a committee candidate. */
  blsPublicKey?: Uint8Array
  blsProof?: Uint8Array
  /**
   * Where clients reach this node's apps: an https:// URL (issue 14: TLS with the key the
   * certification binds), or http://127.0.0.1… for local use only. Absent: the node serves no clients.
   */
  endpoint?: string
}
/**
 * `reset: true` (after a reboot) ends the current certification at once. `tlsKey` is sha256 of the
 * DER SubjectPublicKeyInfo of the node's TLS key: the round's quote binds it (members check it)
 * and a passing QC records it on the node, so clients can pin the TLS key to the certification.
 */
export interface AttestRequestBody {
  nodeId: string
  round: number
  reset?: boolean
  tlsKey?: Uint8Array
}
export interface AttestRecordBody {
  nodeId: string
  round: number
  qc: Uint8Array
}
/**
 * A proof that committee member `verdict.member` signed a verdict the evidence contradicts:
 * `verdict` is the member's signed verdict (attestation/quorum encodeMemberVerdict) for round
 * `round` of `nodeId`, `evidence` the bundle it judged (sha256 = the verdict's evidence digest).
 */
export interface VerifierFaultBody {
  nodeId: string
  round: number
  verdict: Uint8Array
  evidence: Uint8Array
}

/** Resource limits an app runs with (the node may refuse an app whose limits exceed its budget). */
export interface AppLimits {
  memoryBytes: number
  pids: number
  /** CPU in units of 1e-9 CPUs; absent: unlimited. */
  nanoCpus?: number
}
/**
 * A serverless app (issue 13): the first publisher of `name` owns it; each publish adds a new
 * `version` (never reused) and makes it the current one. Nodes load the current version on the
 * first request for it and stop it after `idleTimeoutMs` without requests.
 */
export interface AppPublishBody {
  name: string
  version: string
  /** Docker image ID (`sha256:<hex>` of the config JSON), its IPFS CID and archive size in bytes. */
  digest: string
  cid: string
  size: number
  /** Port the container answers on at 127.0.0.1. */
  port: number
  args?: string[]
  env?: string[]
  /** Path probed until the container answers (default '/'). */
  healthPath?: string
  limits: AppLimits
  idleTimeoutMs: number
}
/** Without `version` the whole app is revoked (no version of it runs any more); with one, only that version. */
export interface AppRevokeBody {
  name: string
  version?: string
}
/** One app's traffic on one node in one period. */
export interface AppUsage {
  app: string
  requests: number
  bytesIn: number
  bytesOut: number
}
/**
 * A node's signed summary of the requests it served per app in [from, to) (Unix ms), signed by the
 * node's key. Periods of one node never overlap; at most MAX_USAGE_APPS apps per record.
 */
export interface UsageRecordBody {
  nodeId: string
  from: number
  to: number
  apps: AppUsage[]
}
export const MAX_USAGE_APPS = 64
/** A usage.record as stored (key usage/<nodeId>/<seq>, seq zero-padded to 16 digits). */
export interface UsageRecordStored extends UsageRecordBody {
  height: number
}
/** Running totals of one app over every usage.record that named it (key appuse/<name>). */
export interface AppUsageTotals {
  app: string
  requests: number
  bytesIn: number
  bytesOut: number
  /** usage.record transactions that named the app, and distinct nodes that sent them. */
  records: number
  nodes: number
  /** Earliest start and latest end of the periods counted (Unix ms). */
  from?: number
  to?: number
  height?: number
}
/** One node's totals for one app (key appusen/<name>/<nodeId>). */
export interface AppNodeUsage {
  nodeId: string
  requests: number
  bytesIn: number
  bytesOut: number
  records: number
  /** End of the node's latest period counted. */
  to: number
  height: number
}
/** One app's line of one usage.record (key appuser/<name>/<seq>; the most recent kept). */
export interface AppUsageEntry extends AppUsage {
  nodeId: string
  from: number
  to: number
  height: number
}
/** What the /app/usage query answers (ChainClient.appUsage). */
export interface AppUsageView {
  totals: AppUsageTotals
  /** Per node, sorted by node id. */
  nodes: AppNodeUsage[]
  /** Most recent lines first. */
  recent: AppUsageEntry[]
}
/** What the /app query answers (ChainClient.app): the record, its current version, every version. */
export interface AppView {
  record: AppRecord
  current?: AppVersionRecord
  versions: AppVersionRecord[]
}

export interface TxBodies {
  'vendor.register': VendorRegisterBody
  'vendor.ekca.publish': EkCaPublishBody
  'vendor.ekca.revoke': EkCaRevokeBody
  'firmware.publish': FirmwarePublishBody
  'firmware.revoke': FirmwareRevokeBody
  'os.publish': OsPublishBody
  'os.revoke': OsRevokeBody
  'image.publish': ImagePublishBody
  'image.revoke': ImageRevokeBody
  'node.register': NodeRegisterBody
  'attest.request': AttestRequestBody
  'attest.record': AttestRecordBody
  'verifier.fault': VerifierFaultBody
  'app.publish': AppPublishBody
  'app.revoke': AppRevokeBody
  'usage.record': UsageRecordBody
}

/** A decoded, not yet verified transaction. */
export interface DecodedTx {
  readonly v: number
  readonly type: string
  readonly chainId: string
  readonly signer: Uint8Array
  readonly seq: number
  readonly body: Canonical
  readonly sig: Uint8Array
  /** The canonical bytes that were signed (without the domain prefix). */
  readonly payload: Uint8Array
  /** sha256 of the whole transaction, as CometBFT hashes txs. */
  readonly hash: Uint8Array
}

/** ABCI-like result codes (codespace "quorate"). 0 is success. */
export const TxCode = {
  OK: 0,
  MALFORMED: 1,
  TOO_LARGE: 2,
  BAD_SIGNATURE: 3,
  BAD_SEQUENCE: 4,
  UNKNOWN_TYPE: 5,
  UNAUTHORIZED: 6,
  CONFLICT: 7,
  NOT_FOUND: 8,
  INVALID_BODY: 9,
  WRONG_CHAIN: 10,
  UNSUPPORTED_VERSION: 11,
  QC_REJECTED: 12,
  NOT_READY: 13,
  /** Not yet: a round is open or the node is cooling down; the log names the height it is allowed at. */
  TOO_EARLY: 14,
  /** A verifier.fault whose evidence does not contradict the verdict (re-appraisal agrees). */
  NO_FAULT: 15
} as const
export type TxCodeValue = (typeof TxCode)[keyof typeof TxCode]

export interface TxResult {
  readonly code: number
  readonly log: string
  readonly data?: Uint8Array
  readonly codespace: string
}

// ---- stored records (canonical CBOR values in the state) ----
export interface VendorRecord {
  name: string
  owner: Uint8Array
  height: number
}
export interface EkCaRecord {
  vendor: string
  fingerprint: Uint8Array
  certificate: Uint8Array
  height: number
  revokedAt?: number
}
export interface FirmwareRecord {
  vendor: string
  platform: string
  version: string
  bank: HashBank
  pcrs: PcrRefs
  publisher: Uint8Array
  height: number
  revokedAt?: number
}
export interface OsRecord {
  name: string
  version: string
  bank: HashBank
  pcrs: PcrRefs
  publisher: Uint8Array
  height: number
  revokedAt?: number
}
export interface OwnerRecord {
  name: string
  owner: Uint8Array
  height: number
}
/** One published version of an app, as stored (key app/<name>/<version>). */
export interface AppVersionRecord extends AppPublishBody {
  publisher: Uint8Array
  height: number
  revokedAt?: number
}
/** An app as stored (key app/<name>): its owner and current version. */
export interface AppRecord {
  name: string
  owner: Uint8Array
  /** The version nodes run; absent once every version is revoked. */
  current?: string
  versions: string[]
  height: number
  revokedAt?: number
}
export interface ImageRecord {
  name: string
  digest: string
  cid: string
  size: number
  publisher: Uint8Array
  height: number
  revokedAt?: number
}
/** Certification status as stored; `certified` is only effective while `expiresAt` > block time. */
export type NodeStatus = 'registered' | 'certified' | 'failed' | 'revoked'
export interface NodeRecord {
  nodeId: string
  publicKey: Uint8Array
  ekCertificate: Uint8Array
  akPublic: Uint8Array
  addrs: string[]
  platform?: string
  os?: string
  registeredAt: number
  status: NodeStatus
  statusHeight: number
  statusReason?: string
  round?: number
  expiresAt?: number
  qcHash?: Uint8Array
  committee?: string[]
  /** Security level (bits) the committee of the certifying round reached (current rules). */
  securityBits?: number
  /** BLS verdict key registered (possession proven at node.register). */
  blsPublicKey?: Uint8Array
  /**
   * Current rules: the first passing QC for this EK certificate and AK recorded that a quorum
   * checked the AK–EK binding (TPM2_ActivateCredential); later committees rely on it.
   */
  akBound?: { round: number; height: number }
  /** Client endpoint from node.register (NodeRegisterBody.endpoint). */
  endpoint?: string
  /** sha256 of the TLS key's SPKI that the certifying round's quote bound (set with the certification). */
  tlsKey?: Uint8Array
}
export interface AttestRequestRecord {
  nodeId: string
  round: number
  height: number
  reset?: boolean
  /** Current rules: the last height at which the round may be recorded; closed as failed after it. */
  deadline?: number
  /** Set at the first block after `height`. */
  seed?: Uint8Array
  seedHeight?: number
  seedBlockHash?: Uint8Array
  /** Candidate node ids (sorted) snapshotted when the seed was fixed. */
  candidates?: string[]
  /** Current rules: committee size drawn for the round and the security level it reaches (fixed with the seed). */
  k?: number
  securityBits?: number
  /** Current rules: the committee in drawn order (what a QC's signer bitmap indexes), instead of every candidate. */
  committee?: string[]
  /** Current rules: how many candidates the committee was drawn from. */
  candidateCount?: number
  recordedAt?: number
  /** Current rules: the round ended without a QC (deadline passed, or abandoned by a reset). */
  closedAt?: number
  closeReason?: string
  /** The TLS key hash the node asked this round to bind (AttestRequestBody.tlsKey). */
  tlsKey?: Uint8Array
}
/** Current rules: consecutive failed rounds of a node and the height its next request is allowed at. */
export interface CooldownRecord {
  failures: number
  allowedAt: number
}
/** Current rules: a round kept after it ended (for fault proofs), until `endHeight` + faultWindowBlocks. */
export interface RoundArchive {
  nodeId: string
  round: number
  seed: Uint8Array
  k: number
  committee: string[]
  height: number
  seedHeight: number
  endHeight: number
}
/** A verifier removed from the candidates, and why (a proven fault, or chronic silence). */
export interface FaultRecord {
  member: string
  reason: 'fault' | 'silence'
  height: number
  nodeId?: string
  round?: number
  outcome?: 'pass' | 'fail'
  claims?: string[]
  rounds?: number
  missed?: number
}
/** Current rules: rounds a verifier was drawn for in its current window, and how many QCs it is missing from. */
export interface SilenceRecord {
  rounds: number
  missed: number
}

/**
 * Re-appraisal for fault proofs, injected like QuorumRules (chain/ does not import attestation/).
 * Must be a pure function of its input, the same on every validator. Returns the claims that fail
 * (malformed evidence fails them all). The chain judges only the claims that depend on evidence
 * and chain state alone (FAULT_CLAIMS): identity and freshness also depend on the member's
 * session (its nonce, the credential it issued), which the chain cannot replay.
 */
export interface FaultAppraiser {
  appraise(input: {
    evidence: Uint8Array
    nodeId: string
    /** What the node registered (EK certificate and AK). */
    registered: { ekCertificate: Uint8Array; akPublic: Uint8Array }
    /** Reference values for the node's platform and OS, as the members' appraiser fetches them. */
    refs: ReferenceValues
    /**
     * Whether an image digest ("sha256:…") was published and not revoked. With `image` (the
     * container log's image string) of the form "<app>@<version>": whether that app version was
     * published with this digest (revoked since or not), as the members' appraiser decides.
     */
    imageAllowed: (digest: string, image?: string) => boolean
    /** Block time of the proof (Unix ms): the only clock an appraisal on chain may read. */
    time: number
  }): { failedClaims: readonly string[] }
}
/** The claims a fault proof can decide. */
export const FAULT_CLAIMS: readonly string[] = ['firmware', 'os', 'containers']
export interface QcRecord {
  nodeId: string
  round: number
  qc: Uint8Array
  outcome: 'pass' | 'fail'
  expiresAt: number
  committee: string[]
  height: number
}

/** Effective view of a node for queries: its record plus the status at the latest block time. */
export type EffectiveStatus =
  | 'registered'
  | 'pending'
  | 'certified'
  | 'expired'
  | 'failed'
  | 'revoked'
  | 'genesis-verifier'
export interface NodeView {
  nodeId: string
  effective: EffectiveStatus
  certified: boolean
  record?: NodeRecord
  request?: AttestRequestRecord
  genesisVerifier: boolean
  /** Current rules: present while the node has failed rounds not yet reset by a pass. */
  cooldown?: CooldownRecord
  /** Present when the node was removed from the candidates (a proven fault or chronic silence). */
  fault?: FaultRecord
}
export interface SeedView {
  status: 'none' | 'pending' | 'ready'
  nodeId: string
  round?: number
  requestHeight?: number
  seedHeight?: number
  seed?: Uint8Array
  /** Committee size drawn (current rules: fixed with the seed; legacy: genesis committee_size). */
  k?: number
  /** Current rules: security level the committee reaches, and the last height the round may be recorded. */
  securityBits?: number
  deadline?: number
  /**
   * Legacy rules: the snapshot taken when the seed was fixed, sorted by node id. Current rules: the
   * drawn committee itself, in drawn order (drawing k of these gives them back in the same order).
   * addrs from registrations ([] for unregistered genesis verifiers).
   */
  candidates?: Array<{ nodeId: string; publicKey: Uint8Array; addrs: string[]; blsPublicKey?: Uint8Array }>
  /** Current rules: the committee in drawn order, and the number of candidates it was drawn from. */
  committee?: string[]
  candidateCount?: number
  /** The TLS key hash the round binds (from the request), which members check the quote covers. */
  tlsKey?: Uint8Array
}

/**
 * Quorum rules, injected (chain must not import attestation/): structurally attestation/quorum's
 * QuorumRules (certificate.ts) — keep the two equal. Pure and deterministic. Each check throws
 * InvalidInputError when its input is not acceptable.
 */
export interface QuorumRules {
  /**
   * The committee a round draws among `candidates` candidates: k = min(smallest size reaching
   * the model's level, candidates), the size the model asks for (target), and the security level
   * that k actually reaches (⌊−log2 P_forge(k)⌋, exact arithmetic; Infinity when F = 0).
   */
  committeeSize(model: AdversaryModel, candidates: number): { k: number; target: number; securityBits: number }
  /** The committee of a round in drawn order (the order a QC's signer bitmap indexes); the node itself excluded. */
  drawCommittee(input: {
    seed: Uint8Array
    nodeId: string
    candidates: readonly string[]
    k: number
  }): readonly string[]
  /**
   * A QC v3 (BLS aggregate + signer bitmap) for round `round` of `nodeId` on `chainId`: the
   * committee re-derived (or `committee` as drawCommittee gave it), > 2/3 signers, aggregate
   * signature valid. Candidates' BLS keys must have passed verifyPossession at node.register.
   * No expiry inside: the chain sets it (genesis certTtlMs).
   */
  verifyCertificate(input: QuorumCommitteeInput & { qc: Uint8Array }): {
    outcome: 'pass' | 'fail'
    evidenceDigest: Uint8Array
    failedClaims: readonly string[]
    committee: readonly string[]
    threshold: number
    signers: readonly string[]
    /** Only QC formats whose verdicts sign an expiry (v2, the test double): it can only shorten the chain's. */
    expiresAt?: number
  }
  /** One member's signed verdict (canonical bytes): member-submitted verdicts and fault proofs. */
  verifyVerdict(input: QuorumCommitteeInput & { verdict: Uint8Array }): {
    verdict: {
      chainId: string
      nodeId: string
      round: number
      outcome: 'pass' | 'fail'
      evidenceDigest: Uint8Array
      failedClaims: readonly string[]
      member: string
      signature: Uint8Array
    }
    committee: readonly string[]
    /** The member's position in the committee. */
    index: number
  }
  /** node.register: the BLS public key (48 bytes) and its proof of possession bound to the node id. */
  verifyPossession(input: { nodeId: string; blsPublicKey: Uint8Array; proof: Uint8Array }): void
}

/** Whose committee, which round, drawn how: what the quorum rules need to re-derive a committee. */
export interface QuorumCommitteeInput {
  chainId: string
  nodeId: string
  round: number
  seed: Uint8Array
  /** Candidates at the round's height with their registered BLS public keys (the node itself is skipped). */
  candidates: ReadonlyArray<{ nodeId: string; blsPublicKey: Uint8Array }>
  /** Committee size fixed with the seed. */
  k: number
  /** The committee as drawCommittee returned it, when kept; saves the re-draw over all candidates. */
  committee?: readonly string[]
}

/** Genesis of a chain (stored as CometBFT-like genesis.json in the home dir). */
export interface Genesis {
  chainId: string
  /** Unix ms. */
  genesisTime: number
  initialHeight: number
  /** ed25519 public keys of validators (the embedded validator: exactly one). */
  validators: Uint8Array[]
  /** Node ids (peer ids) treated as certified forever. */
  verifiers: string[]
  /** Committee size k under legacy rules (default 7); current rules derive k from `certification`. */
  committeeSize?: number
  /** Certification rules (DESIGN.md "Certification rules"); missing fields take DEFAULT_CERTIFICATION. */
  certification?: Partial<CertificationParams>
}

/**
 * Genesis parameters of certification. `current` (the default): every round ends on chain by its
 * deadline, failed rounds cost an exponential cooldown, k follows from the adversary model.
 * `legacy`: the rules before issue 10 (no deadline, no cooldown, fixed k) — kept only so the
 * simulator can show the hole they leave; a legacy chain writes exactly the state it used to.
 */
export interface CertificationParams {
  rules: 'current' | 'legacy'
  /** Fraction F of colluding candidates the network tolerates, as num/den (default 1/5; F < 1/3). */
  adversaryFraction: { num: number; den: number }
  /** Forgery probability per round ≤ 2^-securityBits (default 40). */
  securityBits: number
  /** D: a round requested at height H is closed as failed at H + D + 1 unless recorded by H + D. */
  roundDeadlineBlocks: number
  /** After n consecutive failed rounds the next request waits min(base × 2^n, max) blocks. */
  cooldownBaseBlocks: number
  cooldownMaxBlocks: number
  /** A pass certifies for this long (ms of block time) at most. */
  certTtlMs: number
  /** How long (blocks) after a round ended a fault proof about it is accepted (the chain keeps its committee). */
  faultWindowBlocks: number
  /** Silence: a verifier missing from more than half of the QCs of `silenceWindowRounds` rounds it was drawn for is dropped. */
  silenceWindowRounds: number
}

export const DEFAULT_CERTIFICATION: Readonly<CertificationParams> = Object.freeze({
  rules: 'current',
  adversaryFraction: Object.freeze({ num: 1, den: 5 }),
  securityBits: 40,
  roundDeadlineBlocks: 300,
  cooldownBaseBlocks: 10,
  cooldownMaxBlocks: 14_400,
  certTtlMs: 24 * 3600_000,
  faultWindowBlocks: 100_000,
  silenceWindowRounds: 32
})

/** The adversary model the quorum rules size committees for (attestation/quorum AdversaryModel). */
export interface AdversaryModel {
  readonly fractionNum: number
  readonly fractionDen: number
  readonly securityBits: number
}

export interface BlockHeader {
  chainId: string
  height: number
  /** Unix ms, set by the proposer. */
  time: number
  lastBlockHash: Uint8Array
  /** sha256 over the canonical array of tx hashes. */
  dataHash: Uint8Array
  /** As in CometBFT: app hash after the previous block. */
  appHash: Uint8Array
  /** As in CometBFT: hash of the previous block's results. */
  lastResultsHash: Uint8Array
  proposer: Uint8Array
}
