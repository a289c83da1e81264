// The chain's state machine, in the shape of an ABCI application (cometbft abci/example/kvstore):
// checkTx (mempool admission) · finalizeBlock (apply a decided block, return results and the
// app hash) · commit (persist atomically) · query. Validation is separate from application; apply
// reads nothing but the block (height, time, hash, txs) and the state — no clock, randomness or
// I/O besides the state store — so every node fed the same blocks reaches the same app hash.
//
// A failed transaction changes nothing (not even its signer's sequence): each tx runs in its own
// overlay that is merged into the block only on success.
import { DatabaseSync } from 'node:sqlite'
import { equal, sha256, toHex, utf8 } from '../encoding/bytes.ts'
import { decode, encode, is, type Canonical } from '../encoding/canonical.ts'
import { InvalidInputError, QuorateError } from '../encoding/errors.ts'
import { silentLogger, type Logger } from '../encoding/log.ts'
import { NAME_RE, VERSION_RE, isTxType, parseBody } from './bodies.ts'
import { peerIdToPublicKey } from './keys.ts'
import { committeeSeed } from './seed.ts'
import { resolveCertification } from './genesis.ts'
import {
  EMPTY,
  Overlay,
  PROOF_TYPE,
  StateStore,
  dec,
  enc,
  encodeProof,
  type PreparedRoot,
  type WriteSet
} from './store.ts'

export { PROOF_TYPE }
import { decodeTx, verifyTxSignature } from './tx.ts'
import {
  CHAIN_ID_RE,
  DEFAULT_COMMITTEE_SIZE,
  MAX_TX_BYTES,
  TX_VERSION,
  TxCode,
  type AdversaryModel,
  type AppNodeUsage,
  type AppRecord,
  type AppUsageEntry,
  type AppUsageTotals,
  type AppUsageView,
  type AppView,
  type AppVersionRecord,
  type AttestRequestRecord,
  type UsageRecordStored,
  type CertificationParams,
  type CooldownRecord,
  type QuorumCommitteeInput,
  type FaultAppraiser,
  type FaultRecord,
  type RoundArchive,
  type SilenceRecord,
  FAULT_CLAIMS,
  type DecodedTx,
  type EkCaRecord,
  type FirmwareRecord,
  type Genesis,
  type ImageRecord,
  type NodeRecord,
  type NodeView,
  type OsRecord,
  type OwnerRecord,
  type QcRecord,
  type QuorumRules,
  type RefSet,
  type ReferenceValues,
  type SeedView,
  type TxBodies,
  type TxResult,
  type TxType,
  type VendorRecord
} from './types.ts'

export const CODESPACE = 'quorate'
/** Validated txs kept between checkTx and finalizeBlock (above the default mempool size of 50,000). */
const VERIFIED_CACHE = 65_536

export interface ChainAppOptions {
  /** SQLite database file; ':memory:' (the default) for tests. */
  path?: string
  rules: QuorumRules
  /** Re-appraisal for verifier.fault (without it the chain refuses fault proofs). Every validator must inject the same. */
  appraiser?: FaultAppraiser
  logger?: Logger
}

export interface FinalizeBlockRequest {
  height: number
  /** Unix ms set by the proposer. */
  time: number
  /** Hash of this block (known before execution, as in CometBFT). */
  hash: Uint8Array
  txs: readonly Uint8Array[]
}
export interface FinalizeBlockResponse {
  txResults: TxResult[]
  appHash: Uint8Array
}
export interface QueryRequest {
  path: string
  data?: Uint8Array
  height?: number
  prove?: boolean
}
export interface ProofOp {
  type: string
  key: Uint8Array
  data: Uint8Array
}
export interface QueryResponse {
  code: number
  log: string
  key?: Uint8Array
  value?: Uint8Array
  height: number
  proofOps?: ProofOp[]
  codespace: string
}
export interface AppInfo {
  initialized: boolean
  chainId: string
  /** Last committed height (initialHeight − 1 right after genesis). */
  height: number
  /** App hash after the last committed height. */
  appHash: Uint8Array
  /** Block time of the last committed height (genesis time before the first block). */
  time: number
  genesis?: Genesis
}

export interface ChainApp {
  /** The SQLite database (the embedded validator keeps its block store in it, same transactions). */
  readonly db: DatabaseSync
  info(): AppInfo
  /** Stores the genesis state (verifiers); only on an empty database. Returns the app hash. */
  initChain(genesis: Genesis): Uint8Array
  /**
   * `hash` (sha256 of tx) may be passed when the caller already computed it. `signatureChecked`
   * says the caller has verified the ed25519 signature of exactly these bytes and it holds
   * (chain/verify-pool.ts, off the main thread); only then is the check skipped here. Pass it only
   * for a verification that succeeded: a failed one goes through the ordinary check, which
   * answers with the usual code and message.
   */
  checkTx(tx: Uint8Array, hash?: Uint8Array, signatureChecked?: boolean): TxResult
  /**
   * Only the checks that do not depend on state (size, encoding, version, chain, type, body,
   * signature): what makes a block holding the tx invalid (ProcessProposal). Caches the
   * verification for finalizeBlock like checkTx.
   */
  validateTx(tx: Uint8Array): TxResult
  /** Drops the mempool view of sequences (after a commit; then re-check what is left). */
  resetCheckState(): void
  finalizeBlock(req: FinalizeBlockRequest): FinalizeBlockResponse
  /** Persists the finalized block in one SQLite transaction; `extra` runs inside it. */
  commit(extra?: () => void): { height: number; appHash: Uint8Array }
  query(req: QueryRequest): QueryResponse
  close(): void
}

class TxFail extends Error {
  readonly code: number
  constructor(code: number, message: string) {
    super(message)
    this.code = code
  }
}

function ok(data?: Uint8Array): TxResult {
  return data === undefined ? { code: 0, log: '', codespace: '' } : { code: 0, log: '', data, codespace: '' }
}
function fail(code: number, log: string): TxResult {
  return { code, log, codespace: CODESPACE }
}

interface Ctx {
  readonly s: Overlay
  readonly height: number
  readonly time: number
  readonly signer: Uint8Array
  readonly txHash: Uint8Array
  /** Genesis certification parameters (resolved). */
  readonly cert: CertificationParams
  readonly genesis: Genesis
  readonly appraiser?: FaultAppraiser
}

/** What deliver needs of a validated tx (kept small: it lives in the cache while the tx waits in the mempool). */
interface Validated {
  tx: { seq: number; signer: Uint8Array; hash: Uint8Array }
  type: TxType
  body: TxBodies[TxType]
  signerHex: string
}

const get = <T>(s: { get: (k: string) => Uint8Array | undefined }, k: string): T | undefined => {
  const v = s.get(k)
  return v === undefined ? undefined : dec<T>(v)
}
const put = (s: Overlay, k: string, v: object): void => {
  s.set(k, enc(v as Canonical))
}

function requireVendor(c: Ctx, vendor: string): VendorRecord {
  const v = get<VendorRecord>(c.s, `vendor/${vendor}`)
  if (v === undefined) throw new TxFail(TxCode.NOT_FOUND, `vendor "${vendor}" is not registered`)
  if (!equal(v.owner, c.signer))
    throw new TxFail(TxCode.UNAUTHORIZED, `only the key that registered vendor "${vendor}" may sign for it`)
  return v
}

/** First come, first served ownership of an OS or image name. */
function claimName(c: Ctx, key: string, name: string, what: string): void {
  const o = get<OwnerRecord>(c.s, key)
  if (o === undefined) {
    put(c.s, key, { name, owner: c.signer, height: c.height })
    return
  }
  if (!equal(o.owner, c.signer)) throw new TxFail(TxCode.UNAUTHORIZED, `${what} "${name}" belongs to another publisher`)
}
function requireName(c: Ctx, key: string, name: string, what: string): void {
  const o = get<OwnerRecord>(c.s, key)
  if (o === undefined) throw new TxFail(TxCode.NOT_FOUND, `${what} "${name}" was never published`)
  if (!equal(o.owner, c.signer)) throw new TxFail(TxCode.UNAUTHORIZED, `${what} "${name}" belongs to another publisher`)
}

/**
 * Revoking a reference set ends the certification of every node that named that platform/OS at
 * registration, and of every node that named none (it cannot be told apart); they re-attest.
 */
function endCertifications(c: Ctx, index: 'nodeplat' | 'nodeos', name: string, reason: string): void {
  for (const prefix of [`${index}/${name}/`, `${index}/*/`]) {
    for (const [k] of c.s.scan(prefix)) {
      const id = k.slice(prefix.length)
      const rec = get<NodeRecord>(c.s, `node/${id}`)
      if (rec === undefined || rec.status !== 'certified') continue
      put(c.s, `node/${id}`, {
        ...rec,
        status: 'revoked',
        statusReason: reason,
        statusHeight: c.height,
        tlsKey: undefined
      })
      c.s.del(`cert/${id}`)
    }
  }
}

/**
 * Current rules: the candidates that can sign a verdict — certified, unexpired nodes and genesis
 * verifiers that registered a BLS key (cert/ and gv/ entries carry it, so no record is read) —
 * minus the node, sorted by node id.
 */
function blsCandidatesAt(
  s: { scan: Overlay['scan'] },
  now: number,
  exclude: string
): Array<{ nodeId: string; blsPublicKey: Uint8Array }> {
  const out = new Map<string, Uint8Array>()
  for (const [k, v] of s.scan('cert/')) {
    const c = dec<{ expiresAt: number; blsPublicKey?: Uint8Array }>(v)
    if (c.expiresAt > now && c.blsPublicKey !== undefined) out.set(k.slice(5), c.blsPublicKey)
  }
  for (const [k, v] of s.scan('gv/')) {
    const g = dec<{ blsPublicKey?: Uint8Array }>(v)
    if (g.blsPublicKey !== undefined) out.set(k.slice(3), g.blsPublicKey)
  }
  out.delete(exclude)
  return [...out.keys()].sort().map(nodeId => ({ nodeId, blsPublicKey: out.get(nodeId) as Uint8Array }))
}

/** A registered node's BLS key. */
function blsKeyOf(s: { get: (k: string) => Uint8Array | undefined }, nodeId: string): Uint8Array | undefined {
  return get<NodeRecord>(s, `node/${nodeId}`)?.blsPublicKey
}

function candidatesAt(s: { scan: Overlay['scan'] }, now: number, exclude: string): string[] {
  const ids = new Set<string>()
  for (const [k, v] of s.scan('cert/')) if (dec<{ expiresAt: number }>(v).expiresAt > now) ids.add(k.slice(5))
  for (const [k] of s.scan('gv/')) ids.add(k.slice(3))
  ids.delete(exclude)
  return [...ids].sort()
}

const fpHex = (cert: Uint8Array): string => toHex(sha256(cert))

/** The next sequence number of an account (0 before its first transaction). */
const nextSeq = (s: { get: (k: string) => Uint8Array | undefined }, signerHex: string): number =>
  get<{ seq: number }>(s, `acct/${signerHex}`)?.seq ?? 0

/** Marks the published record at k revoked at this height; refuses one that is missing or already revoked. */
function markRevoked<T extends { revokedAt?: number }>(c: Ctx, k: string, label: string, missing: string): void {
  const old = get<T>(c.s, k)
  if (old === undefined) throw new TxFail(TxCode.NOT_FOUND, missing)
  if (old.revokedAt !== undefined) throw new TxFail(TxCode.CONFLICT, `${label} is already revoked`)
  put(c.s, k, { ...old, revokedAt: c.height })
}

// ---- certification rounds under the current rules (DESIGN.md "Certification rules") ----
// A request opens round r with deadline = request height + D. It ends on chain either with a QC
// (attest.record, by the node or anyone holding it) or, failing that, is closed as failed at the
// start of block deadline + 1 by the chain itself (closeExpiredRounds), so a node cannot hide a
// losing round. While a round is open no other may be opened. Each failed round (fail QC, no QC
// by the deadline, abandoned by a reset) doubles the wait before the next request:
// min(base × 2^failures, max) blocks after the failure; a pass clears it.

/** State key of the deadline index: the rounds to close at the start of block `height` + 1. */
const deadlineKey = (height: number, nodeId: string): string => `rdl/${height}/${nodeId}`

const isOpen = (r: AttestRequestRecord | undefined): r is AttestRequestRecord =>
  r !== undefined && r.deadline !== undefined && r.recordedAt === undefined && r.closedAt === undefined

/** Counts one more consecutive failure of `nodeId` at `height` and sets when it may request again. */
function countFailure(s: Overlay, cert: CertificationParams, nodeId: string, height: number): CooldownRecord {
  const failures = (get<CooldownRecord>(s, `cool/${nodeId}`)?.failures ?? 0) + 1
  // base × 2^30 stays an exact integer for any base the genesis allows (≤ 10^6)
  const wait = Math.min(cert.cooldownMaxBlocks, cert.cooldownBaseBlocks * 2 ** Math.min(failures, 30))
  const c: CooldownRecord = { failures, allowedAt: height + wait }
  put(s, `cool/${nodeId}`, c)
  return c
}

/**
 * Ends an open round without a QC at `height`: the request is marked closed, the failure counted.
 * A node certified by an earlier round stays certified (no quorum says nothing against it; a reset
 * ends it separately); any other node is marked failed.
 */
function closeRound(
  s: Overlay,
  cert: CertificationParams,
  req: AttestRequestRecord,
  height: number,
  reason: string
): void {
  if (req.deadline !== undefined) s.del(deadlineKey(req.deadline, req.nodeId))
  put(s, `req/${req.nodeId}`, { ...req, closedAt: height, closeReason: reason })
  archiveRound(s, cert, req, height)
  countFailure(s, cert, req.nodeId, height)
  const rec = get<NodeRecord>(s, `node/${req.nodeId}`)
  if (rec !== undefined && rec.status !== 'certified') {
    put(s, `node/${req.nodeId}`, {
      ...rec,
      status: 'failed',
      statusReason: `round ${req.round}: ${reason}`,
      statusHeight: height,
      round: req.round
    })
  }
}

/**
 * Keeps an ended round's committee for fault proofs, until endHeight + faultWindowBlocks (then
 * pruned at the start of a block through the rndexp/ index: O(pruned)). A round that ended before
 * its seed was fixed had no committee and is not kept.
 */
function archiveRound(s: Overlay, cert: CertificationParams, req: AttestRequestRecord, endHeight: number): void {
  if (req.seed === undefined || req.committee === undefined || req.seedHeight === undefined) return
  const a: RoundArchive = {
    nodeId: req.nodeId,
    round: req.round,
    seed: req.seed,
    k: req.k ?? req.committee.length,
    committee: req.committee,
    height: req.height,
    seedHeight: req.seedHeight,
    endHeight
  }
  put(s, `rnd/${req.nodeId}/${req.round}`, a)
  s.set(`rndexp/${endHeight + cert.faultWindowBlocks}/${req.nodeId}/${req.round}`, EMPTY)
}

/**
 * Removes a verifier from the candidates, on record: its BLS key leaves its cert/ and gv/ entries
 * (what the candidate snapshot reads), and stays out when it re-registers or is certified again.
 */
function dropVerifier(s: Overlay, f: FaultRecord): void {
  put(s, `faulty/${f.member}`, f)
  const c = get<{ expiresAt: number; blsPublicKey?: Uint8Array }>(s, `cert/${f.member}`)
  if (c?.blsPublicKey !== undefined) put(s, `cert/${f.member}`, { expiresAt: c.expiresAt })
  const g = get<{ publicKey: Uint8Array; blsPublicKey?: Uint8Array }>(s, `gv/${f.member}`)
  if (g?.blsPublicKey !== undefined) put(s, `gv/${f.member}`, { publicKey: g.publicKey })
}

const isDropped = (s: { get: (k: string) => Uint8Array | undefined }, id: string): boolean =>
  s.get(`faulty/${id}`) !== undefined

/**
 * Silence: every member of a recorded round's committee that is not among the QC's signers
 * missed it (silent, late, or on the losing side). After silenceWindowRounds rounds a member
 * missing from more than half is dropped; otherwise its window starts over. A node can leave
 * out at most k − threshold verdicts from its own QC, so framing an honest member takes many
 * colluding nodes drawing it, round after round.
 */
function countSilence(
  s: Overlay,
  cert: CertificationParams,
  committee: readonly string[],
  signers: readonly string[],
  height: number
): void {
  const signed = new Set(signers)
  for (const m of committee) {
    const r = get<SilenceRecord>(s, `sil/${m}`) ?? { rounds: 0, missed: 0 }
    const next = { rounds: r.rounds + 1, missed: r.missed + (signed.has(m) ? 0 : 1) }
    if (next.rounds < cert.silenceWindowRounds) {
      put(s, `sil/${m}`, next)
      continue
    }
    s.del(`sil/${m}`)
    if (2 * next.missed > next.rounds && !isDropped(s, m))
      dropVerifier(s, { member: m, reason: 'silence', height, rounds: next.rounds, missed: next.missed })
  }
}

/** Ends the node's certification (reset after a reboot). */
function endCertification(s: Overlay, rec: NodeRecord, height: number, reason: string): void {
  if (rec.status !== 'certified') return
  put(s, `node/${rec.nodeId}`, {
    ...rec,
    status: 'registered',
    statusReason: reason,
    statusHeight: height,
    tlsKey: undefined
  })
  s.del(`cert/${rec.nodeId}`)
}

/** Committee size for `candidates` candidates and the level it reaches, as the quorum rules say. */
function committeeFor(
  rules: QuorumRules,
  cert: CertificationParams,
  candidates: number
): { k: number; securityBits: number } {
  const model: AdversaryModel = {
    fractionNum: cert.adversaryFraction.num,
    fractionDen: cert.adversaryFraction.den,
    securityBits: cert.securityBits
  }
  const r = rules.committeeSize(model, candidates)
  const k = Math.min(r.k, candidates)
  // recorded in state: an integer, capped (F = 0 would be infinitely many bits)
  const bits = Number.isFinite(r.securityBits) ? Math.max(0, Math.min(1024, Math.floor(r.securityBits))) : 1024
  if (!Number.isSafeInteger(k) || k < 0) throw new QuorateError(`quorum rules gave committee size ${r.k}`)
  return { k, securityBits: k === 0 ? 0 : bits }
}

/**
 * attest.request under the current rules. A plain request waits for the open round's deadline
 * and any cooldown (TOO_EARLY, naming the height). A reset (reboot) is never refused for that: it
 * ends the certification at once and closes an open round as failed (evidence from before the
 * reboot must not certify after it; and a reset must not be a free way to abandon a losing
 * round), but it opens a new round only when a plain request would be allowed; otherwise its
 * result says `opened: false` and the height the next request is allowed at.
 */
function openRound(
  c: Ctx,
  b: TxBodies['attest.request'],
  rec: NodeRecord,
  prev: AttestRequestRecord | undefined
): Uint8Array {
  if (b.reset === true) {
    if (isOpen(prev)) closeRound(c.s, c.cert, prev, c.height, `abandoned by a reset at height ${c.height}`)
    const now = get<NodeRecord>(c.s, `node/${b.nodeId}`) ?? rec
    endCertification(c.s, now, c.height, `reset at round ${b.round} (reboot)`)
  } else if (isOpen(prev)) {
    throw new TxFail(
      TxCode.TOO_EARLY,
      `round ${prev.round} of ${b.nodeId} is open until height ${prev.deadline ?? 0}; a new round is allowed at height ${(prev.deadline ?? 0) + 1} if it is not recorded by then`
    )
  }
  const cool = get<CooldownRecord>(c.s, `cool/${b.nodeId}`)
  if (cool !== undefined && c.height < cool.allowedAt) {
    if (b.reset === true) return enc({ opened: false, allowedAt: cool.allowedAt })
    throw new TxFail(
      TxCode.TOO_EARLY,
      `${b.nodeId} is cooling down after ${cool.failures} failed round${cool.failures === 1 ? '' : 's'}: attest.request is allowed at height ${cool.allowedAt}`
    )
  }
  const deadline = c.height + c.cert.roundDeadlineBlocks
  const req: AttestRequestRecord = {
    nodeId: b.nodeId,
    round: b.round,
    height: c.height,
    reset: b.reset,
    deadline,
    tlsKey: b.tlsKey
  }
  put(c.s, `req/${b.nodeId}`, req)
  c.s.set(`reqat/${c.height}/${b.nodeId}`, EMPTY)
  c.s.set(deadlineKey(deadline, b.nodeId), EMPTY)
  return enc({ opened: true, round: b.round, deadline })
}

/** attest.record under the current rules, after the QC verified: the round ends here. */
function recordRound(
  c: Ctx,
  b: TxBodies['attest.record'],
  req: AttestRequestRecord,
  rec: NodeRecord,
  out: ReturnType<QuorumRules['verifyCertificate']>,
  committee: string[],
  qcHash: Uint8Array
): Uint8Array {
  if (req.deadline !== undefined) c.s.del(deadlineKey(req.deadline, b.nodeId))
  const expiresAt = out.expiresAt ?? c.time + c.cert.certTtlMs
  if (out.outcome === 'pass') {
    // A pass means > 2/3 of the committee found the identity claim good, which includes the
    // AK–EK binding (each member ran MakeCredential/ActivateCredential, or relied on this record).
    const akBound = rec.akBound ?? { round: b.round, height: c.height }
    put(c.s, `node/${b.nodeId}`, {
      ...rec,
      status: 'certified',
      statusReason: undefined,
      statusHeight: c.height,
      round: b.round,
      expiresAt,
      qcHash,
      committee,
      securityBits: req.securityBits,
      akBound,
      // the TLS key this round's quote bound (issue 14); a round without one leaves the node without
      tlsKey: req.tlsKey
    })
    put(
      c.s,
      `cert/${b.nodeId}`,
      isDropped(c.s, b.nodeId) ? { expiresAt } : { expiresAt, blsPublicKey: rec.blsPublicKey }
    )
    c.s.del(`cool/${b.nodeId}`)
  } else {
    put(c.s, `node/${b.nodeId}`, {
      ...rec,
      status: 'failed',
      statusReason: `committee quorum failed the node in round ${b.round}`,
      statusHeight: c.height,
      round: b.round,
      expiresAt: undefined,
      qcHash,
      committee,
      securityBits: req.securityBits,
      tlsKey: undefined
    })
    c.s.del(`cert/${b.nodeId}`)
    countFailure(c.s, c.cert, b.nodeId, c.height)
  }
  put(c.s, `qc/${b.nodeId}`, {
    nodeId: b.nodeId,
    round: b.round,
    qc: b.qc,
    outcome: out.outcome,
    expiresAt,
    committee,
    height: c.height
  } satisfies QcRecord)
  put(c.s, `req/${b.nodeId}`, { ...req, recordedAt: c.height })
  archiveRound(c.s, c.cert, req, c.height)
  countSilence(c.s, c.cert, committee, out.signers, c.height)
  return enc({ outcome: out.outcome, expiresAt })
}

/**
 * What the quorum rules need to check a round's QC or one verdict: the committee drawn with the
 * seed (current rules keep it; legacy re-derives it from the candidate snapshot) with each
 * member's registered BLS key (empty when it has none: the rules then refuse its signature).
 */
function committeeInput(c: Ctx, req: AttestRequestRecord, nodeId: string): QuorumCommitteeInput {
  const ids = req.committee ?? req.candidates ?? []
  const candidates = ids.map(id => ({ nodeId: id, blsPublicKey: blsKeyOf(c.s, id) ?? EMPTY }))
  const k = req.k ?? c.genesis.committeeSize ?? DEFAULT_COMMITTEE_SIZE
  return {
    chainId: c.genesis.chainId,
    nodeId,
    round: req.round,
    seed: req.seed ?? EMPTY,
    candidates,
    k,
    ...(req.committee === undefined ? {} : { committee: req.committee })
  }
}

/**
 * Reference values for a node as the members' appraiser fetches them (agent/p2p/appraiser.ts:
 * EK CAs, firmware of its vendor/platform, its OS), restricted to what was in force during the
 * round [from, to]: `any` = valid at some height in it (published by `to`, not revoked by `from`),
 * `throughout` = valid at every height (published by `from`, not revoked by `to`). A member could
 * have judged against any state in the round, so a pass is a lie only if a claim fails even
 * against `any`, and a fail only if the claim passes against `throughout`.
 */
function refsDuring(
  s: Overlay,
  rec: NodeRecord,
  from: number,
  to: number,
  mode: 'any' | 'throughout'
): { refs: ReferenceValues; imageAllowed: (digest: string, image?: string) => boolean } {
  const valid = (r: { height: number; revokedAt?: number }): boolean =>
    mode === 'any'
      ? r.height <= to && (r.revokedAt === undefined || r.revokedAt > from)
      : r.height <= from && (r.revokedAt === undefined || r.revokedAt > to)
  const slash = rec.platform?.indexOf('/') ?? -1
  const fwPrefix =
    rec.platform !== undefined && slash > 0
      ? `fw/${rec.platform.slice(0, slash)}/${rec.platform.slice(slash + 1)}/`
      : 'fw/'
  const refs: ReferenceValues = {
    ekCas: s
      .scan('ekca/')
      .map(([, v]) => dec<EkCaRecord>(v))
      .filter(valid)
      .map(r => r.certificate),
    firmware: s
      .scan(fwPrefix)
      .map(([, v]) => dec<FirmwareRecord>(v))
      .filter(valid)
      .map(r => toRefSet(`${r.vendor}/${r.platform}`, r)),
    os: s
      .scan(rec.os === undefined ? 'os/' : `os/${rec.os}/`)
      .map(([, v]) => dec<OsRecord>(v))
      .filter(valid)
      .map(r => toRefSet(r.name, r))
  }
  const imageAllowed = (digest: string, image?: string): boolean => {
    if (typeof digest !== 'string' || !/^sha256:[0-9a-f]{64}$/.test(digest)) return false
    // A serverless app's launch is logged as "<name>@<version>" (image names have no '@'): allowed
    // when that version was published with this digest, revoked since or not — as the members'
    // appraiser decides (agent/p2p/appraiser.ts), so an honest verdict is never a provable fault.
    const at = typeof image === 'string' ? image.indexOf('@') : -1
    if (at > 0) {
      const name = (image as string).slice(0, at)
      const version = (image as string).slice(at + 1)
      if (!NAME_RE.test(name) || !VERSION_RE.test(version)) return false
      const v = get<AppVersionRecord>(s, `app/${name}/${version}`)
      return v !== undefined && v.digest === digest && v.height <= (mode === 'any' ? to : from)
    }
    return s.scan(`imgd/${digest}#`).some(([k]) => {
      const r = get<ImageRecord>(s, `img/${k.slice(k.indexOf('#') + 1)}#${digest}`)
      return r !== undefined && valid(r)
    })
  }
  return { refs, imageAllowed }
}

/**
 * verifier.fault: the member's signed verdict for a round the chain still keeps, and the evidence
 * it committed to. The chain re-appraises that evidence (the injected FaultAppraiser) against the
 * reference values in force during the round and compares the claims it can decide
 * (FAULT_CLAIMS). A contradiction removes the member from the candidates, on record; anything
 * else is refused and changes nothing.
 */
function proveFault(c: Ctx, b: TxBodies['verifier.fault'], rules: QuorumRules): Uint8Array {
  if (c.cert.rules !== 'current')
    throw new TxFail(
      TxCode.UNKNOWN_TYPE,
      'verifier.fault needs the current certification rules (this chain runs legacy rules)'
    )
  if (c.appraiser === undefined)
    throw new TxFail(
      TxCode.NOT_READY,
      'this chain was started without a fault appraiser; it cannot judge verifier.fault'
    )
  const a = get<RoundArchive>(c.s, `rnd/${b.nodeId}/${b.round}`)
  if (a === undefined)
    throw new TxFail(
      TxCode.NOT_FOUND,
      `no ended round ${b.round} of ${b.nodeId} on record (rounds are kept for ${c.cert.faultWindowBlocks} blocks after they end)`
    )
  let v: ReturnType<QuorumRules['verifyVerdict']>['verdict']
  try {
    const candidates = a.committee.map(id => ({ nodeId: id, blsPublicKey: blsKeyOf(c.s, id) ?? EMPTY }))
    v = rules.verifyVerdict({
      verdict: b.verdict,
      chainId: c.genesis.chainId,
      nodeId: b.nodeId,
      round: b.round,
      seed: a.seed,
      candidates,
      k: a.k,
      committee: a.committee
    }).verdict
  } catch (err) {
    throw new TxFail(
      TxCode.INVALID_BODY,
      `verifier.fault: the verdict does not verify as a committee member's for round ${b.round} of ${b.nodeId}: ${(err as Error).message}`
    )
  }
  if (isDropped(c.s, v.member))
    throw new TxFail(TxCode.CONFLICT, `verifier ${v.member} was already removed from the candidates`)
  if (!equal(sha256(b.evidence), v.evidenceDigest))
    throw new TxFail(
      TxCode.INVALID_BODY,
      "verifier.fault: the evidence is not what the verdict judged (its sha256 differs from the verdict's evidence digest)"
    )
  const rec = get<NodeRecord>(c.s, `node/${b.nodeId}`)
  if (rec === undefined) throw new TxFail(TxCode.NOT_FOUND, `node ${b.nodeId} is not registered`)
  const appraise = (mode: 'any' | 'throughout'): Set<string> => {
    const { refs, imageAllowed } = refsDuring(c.s, rec, a.seedHeight, a.endHeight, mode)
    const r = (c.appraiser as FaultAppraiser).appraise({
      evidence: b.evidence,
      nodeId: b.nodeId,
      registered: { ekCertificate: rec.ekCertificate, akPublic: rec.akPublic },
      refs,
      imageAllowed,
      time: c.time
    })
    return new Set(r.failedClaims)
  }
  let claims: string[]
  if (v.outcome === 'pass') {
    const failing = appraise('any')
    claims = FAULT_CLAIMS.filter(x => failing.has(x))
  } else {
    const failing = appraise('throughout')
    claims = FAULT_CLAIMS.filter(x => v.failedClaims.includes(x) && !failing.has(x))
  }
  if (claims.length === 0) {
    throw new TxFail(
      TxCode.NO_FAULT,
      `no fault: re-appraising the evidence against the reference values of round ${b.round} agrees with ${v.member}'s ${v.outcome} verdict on every claim the chain can decide (${FAULT_CLAIMS.join(', ')})`
    )
  }
  dropVerifier(c.s, {
    member: v.member,
    reason: 'fault',
    height: c.height,
    nodeId: b.nodeId,
    round: b.round,
    outcome: v.outcome,
    claims
  })
  return enc({ member: v.member, claims })
}

// ---- serverless apps and usage (issue 13) ----
// State keys (all values canonical CBOR; a light client proves any of them with /key + prove):
//   app/<name>                        AppRecord: owner, current version, versions in publish order
//   app/<name>/<version>              AppVersionRecord: the published body + publisher, height, revokedAt
//   appuse/<name>                     AppUsageTotals: running totals over every usage.record naming the app
//   appusen/<name>/<nodeId>           AppNodeUsage: the same totals for one node
//   appuser/<name>/<seq>              AppUsageEntry: the app's line of its seq-th record (seq = totals.records
//                                     before it; the last RECENT_USAGE kept)
//   usage/<nodeId>/<seq>              UsageRecordStored: the node's seq-th record (the last RECENT_USAGE kept)
//   usagelast/<nodeId>                { from, to, height, records }: the node's latest period (periods never
//                                     overlap) and how many records it sent
// Names and versions cannot contain '/'; sequence numbers are zero-padded to 16 digits so keys sort
// in time order, and the entry that falls out of a window is known without a scan. An app revoked as a whole stays revoked: its name cannot be published again (a
// client that saw the revocation must never be served something else under that name).

/** Versions kept per app (the AppRecord lists them all; a new name lifts the cap). */
export const MAX_APP_VERSIONS = 256
/** Recent usage records kept per node and per app. */
export const RECENT_USAGE = 32
/** usage.record may end at most this far after the block time (clock skew between node and proposer). */
export const USAGE_FUTURE_MS = 60_000

const pad16 = (n: number): string => n.toString().padStart(16, '0')
const addSat = (a: number, b: number): number => Math.min(Number.MAX_SAFE_INTEGER, a + b)

function publishApp(c: Ctx, b: TxBodies['app.publish']): Uint8Array {
  const k = `app/${b.name}`
  const old = get<AppRecord>(c.s, k)
  if (old !== undefined) {
    if (!equal(old.owner, c.signer))
      throw new TxFail(
        TxCode.UNAUTHORIZED,
        `app "${b.name}" belongs to another publisher (the key that first published it)`
      )
    if (old.revokedAt !== undefined)
      throw new TxFail(
        TxCode.CONFLICT,
        `app "${b.name}" was revoked at height ${old.revokedAt} and stays revoked; publish under a new name`
      )
    if (get<AppVersionRecord>(c.s, `${k}/${b.version}`) !== undefined)
      throw new TxFail(
        TxCode.CONFLICT,
        `app "${b.name}" version ${b.version} was already published; versions are never reused — publish a new one`
      )
    if (old.versions.length >= MAX_APP_VERSIONS)
      throw new TxFail(
        TxCode.CONFLICT,
        `app "${b.name}" has ${MAX_APP_VERSIONS} versions, the most one app keeps; publish under a new name`
      )
  }
  put(c.s, `${k}/${b.version}`, { ...b, publisher: c.signer, height: c.height } satisfies AppVersionRecord)
  put(c.s, k, {
    name: b.name,
    owner: old?.owner ?? c.signer,
    current: b.version,
    versions: [...(old?.versions ?? []), b.version],
    height: old?.height ?? c.height
  } satisfies AppRecord)
  return enc({ name: b.name, version: b.version })
}

function revokeApp(c: Ctx, b: TxBodies['app.revoke']): undefined {
  const k = `app/${b.name}`
  const app = get<AppRecord>(c.s, k)
  if (app === undefined) throw new TxFail(TxCode.NOT_FOUND, `app "${b.name}" was never published`)
  if (!equal(app.owner, c.signer))
    throw new TxFail(TxCode.UNAUTHORIZED, `app "${b.name}" belongs to another publisher; only its owner may revoke it`)
  if (app.revokedAt !== undefined)
    throw new TxFail(TxCode.CONFLICT, `app "${b.name}" is already revoked (height ${app.revokedAt})`)
  if (b.version === undefined) {
    put(c.s, k, { ...app, current: undefined, revokedAt: c.height })
    return undefined
  }
  markRevoked<AppVersionRecord>(
    c,
    `${k}/${b.version}`,
    `app "${b.name}" version ${b.version}`,
    `app "${b.name}" has no version ${b.version}`
  )
  if (app.current === b.version) {
    // the newest version still in force takes over (publish order), or none
    let current: string | undefined
    for (let i = app.versions.length - 1; i >= 0 && current === undefined; i--) {
      const v = app.versions[i]
      if (v !== b.version && get<AppVersionRecord>(c.s, `${k}/${v}`)?.revokedAt === undefined) current = v
    }
    put(c.s, k, { ...app, current })
  }
  return undefined
}

function recordUsage(c: Ctx, b: TxBodies['usage.record']): Uint8Array {
  const rec = get<NodeRecord>(c.s, `node/${b.nodeId}`)
  if (rec === undefined)
    throw new TxFail(TxCode.NOT_FOUND, `node ${b.nodeId} is not registered; only registered nodes record usage`)
  if (!equal(rec.publicKey, c.signer))
    throw new TxFail(TxCode.UNAUTHORIZED, `usage.record for ${b.nodeId} must be signed by that node's own key`)
  // Only a node the chain vouches for counts usage (totals rank image providers): certified and
  // unexpired at the block time, or a genesis verifier not dropped for a proven fault.
  const certified = rec.status === 'certified' && (rec.expiresAt ?? 0) > c.time
  if (!certified && (c.s.get(`gv/${b.nodeId}`) === undefined || isDropped(c.s, b.nodeId)))
    throw new TxFail(
      TxCode.UNAUTHORIZED,
      `node ${b.nodeId} is not certified at the block time (status ${rec.status === 'certified' ? 'expired' : rec.status}); only certified nodes record usage`
    )
  if (b.to > c.time + USAGE_FUTURE_MS)
    throw new TxFail(
      TxCode.TOO_EARLY,
      `usage period ends at ${b.to}, more than ${USAGE_FUTURE_MS} ms after the block time ${c.time}`
    )
  const last = get<{ from: number; to: number; height: number; records: number }>(c.s, `usagelast/${b.nodeId}`)
  if (last !== undefined && b.from < last.to)
    throw new TxFail(
      TxCode.CONFLICT,
      `usage period [${b.from}, ${b.to}) overlaps the node's previous one, which ended at ${last.to}`
    )
  for (const a of b.apps)
    if (c.s.get(`app/${a.app}`) === undefined)
      throw new TxFail(TxCode.NOT_FOUND, `usage.record names app "${a.app}", which was never published`)
  const seq = last?.records ?? 0
  put(c.s, `usagelast/${b.nodeId}`, { from: b.from, to: b.to, height: c.height, records: seq + 1 })
  put(c.s, `usage/${b.nodeId}/${pad16(seq)}`, { ...b, height: c.height } satisfies UsageRecordStored)
  if (seq >= RECENT_USAGE) c.s.del(`usage/${b.nodeId}/${pad16(seq - RECENT_USAGE)}`)
  for (const a of b.apps) {
    const nk = `appusen/${a.app}/${b.nodeId}`
    const n = get<AppNodeUsage>(c.s, nk)
    const t = get<AppUsageTotals>(c.s, `appuse/${a.app}`) ?? {
      app: a.app,
      requests: 0,
      bytesIn: 0,
      bytesOut: 0,
      records: 0,
      nodes: 0
    }
    put(c.s, `appuse/${a.app}`, {
      app: a.app,
      requests: addSat(t.requests, a.requests),
      bytesIn: addSat(t.bytesIn, a.bytesIn),
      bytesOut: addSat(t.bytesOut, a.bytesOut),
      records: t.records + 1,
      nodes: t.nodes + (n === undefined ? 1 : 0),
      from: Math.min(t.from ?? b.from, b.from),
      to: Math.max(t.to ?? b.to, b.to),
      height: c.height
    } satisfies AppUsageTotals)
    put(c.s, nk, {
      nodeId: b.nodeId,
      requests: addSat(n?.requests ?? 0, a.requests),
      bytesIn: addSat(n?.bytesIn ?? 0, a.bytesIn),
      bytesOut: addSat(n?.bytesOut ?? 0, a.bytesOut),
      records: (n?.records ?? 0) + 1,
      to: b.to,
      height: c.height
    } satisfies AppNodeUsage)
    put(c.s, `appuser/${a.app}/${pad16(t.records)}`, {
      ...a,
      nodeId: b.nodeId,
      from: b.from,
      to: b.to,
      height: c.height
    } satisfies AppUsageEntry)
    if (t.records >= RECENT_USAGE) c.s.del(`appuser/${a.app}/${pad16(t.records - RECENT_USAGE)}`)
  }
  return enc({ apps: b.apps.length })
}

type Handlers = { [T in TxType]: (c: Ctx, b: TxBodies[T], rules: QuorumRules) => Uint8Array | undefined }

const handlers: Handlers = {
  'vendor.register': (c, b) => {
    const k = `vendor/${b.name}`
    if (c.s.get(k) !== undefined) throw new TxFail(TxCode.CONFLICT, `vendor name "${b.name}" is already registered`)
    put(c.s, k, { name: b.name, owner: c.signer, height: c.height } satisfies VendorRecord)
    return undefined
  },
  'vendor.ekca.publish': (c, b) => {
    requireVendor(c, b.vendor)
    const fp = fpHex(b.certificate)
    const k = `ekca/${b.vendor}/${fp}`
    const old = get<EkCaRecord>(c.s, k)
    if (old !== undefined)
      throw new TxFail(
        TxCode.CONFLICT,
        `EK CA ${fp} of vendor "${b.vendor}" ${old.revokedAt === undefined ? 'is already published' : 'was revoked and cannot be published again'}`
      )
    put(c.s, k, {
      vendor: b.vendor,
      fingerprint: sha256(b.certificate),
      certificate: b.certificate,
      height: c.height
    } satisfies EkCaRecord)
    return undefined
  },
  'vendor.ekca.revoke': (c, b) => {
    requireVendor(c, b.vendor)
    const fp = toHex(b.fingerprint)
    markRevoked<EkCaRecord>(c, `ekca/${b.vendor}/${fp}`, `EK CA ${fp}`, `vendor "${b.vendor}" has no EK CA ${fp}`)
    return undefined
  },
  'firmware.publish': (c, b) => {
    requireVendor(c, b.vendor)
    const k = `fw/${b.vendor}/${b.platform}/${b.version}`
    const old = get<FirmwareRecord>(c.s, k)
    if (old !== undefined)
      throw new TxFail(
        TxCode.CONFLICT,
        `firmware ${b.vendor}/${b.platform} ${b.version} ${old.revokedAt === undefined ? 'is already published' : 'was revoked; publish a new version'}`
      )
    put(c.s, k, { ...b, publisher: c.signer, height: c.height } satisfies FirmwareRecord)
    return undefined
  },
  'firmware.revoke': (c, b) => {
    requireVendor(c, b.vendor)
    const label = `firmware ${b.vendor}/${b.platform} ${b.version}`
    markRevoked<FirmwareRecord>(c, `fw/${b.vendor}/${b.platform}/${b.version}`, label, `${label} was never published`)
    endCertifications(
      c,
      'nodeplat',
      `${b.vendor}/${b.platform}`,
      `firmware ${b.vendor}/${b.platform} ${b.version} revoked at height ${c.height}`
    )
    return undefined
  },
  'os.publish': (c, b) => {
    claimName(c, `osname/${b.name}`, b.name, 'OS')
    const k = `os/${b.name}/${b.version}`
    const old = get<OsRecord>(c.s, k)
    if (old !== undefined)
      throw new TxFail(
        TxCode.CONFLICT,
        `OS ${b.name} ${b.version} ${old.revokedAt === undefined ? 'is already published' : 'was revoked; publish a new version'}`
      )
    put(c.s, k, { ...b, publisher: c.signer, height: c.height } satisfies OsRecord)
    return undefined
  },
  'os.revoke': (c, b) => {
    requireName(c, `osname/${b.name}`, b.name, 'OS')
    const label = `OS ${b.name} ${b.version}`
    markRevoked<OsRecord>(c, `os/${b.name}/${b.version}`, label, `${label} was never published`)
    endCertifications(c, 'nodeos', b.name, `OS ${b.name} ${b.version} revoked at height ${c.height}`)
    return undefined
  },
  'image.publish': (c, b) => {
    claimName(c, `imgname/${b.name}`, b.name, 'image')
    const k = `img/${b.name}#${b.digest}`
    const old = get<ImageRecord>(c.s, k)
    if (old !== undefined)
      throw new TxFail(
        TxCode.CONFLICT,
        `image ${b.name}@${b.digest} ${old.revokedAt === undefined ? 'is already published' : 'was revoked'}`
      )
    put(c.s, k, { ...b, publisher: c.signer, height: c.height } satisfies ImageRecord)
    c.s.set(`imgd/${b.digest}#${b.name}`, EMPTY)
    return undefined
  },
  'image.revoke': (c, b) => {
    requireName(c, `imgname/${b.name}`, b.name, 'image')
    const label = `image ${b.name}@${b.digest}`
    markRevoked<ImageRecord>(c, `img/${b.name}#${b.digest}`, label, `${label} was never published`)
    return undefined
  },
  'node.register': (c, b, rules) => {
    const pub = peerIdToPublicKey(b.nodeId)
    if (!equal(pub, c.signer))
      throw new TxFail(
        TxCode.UNAUTHORIZED,
        `node.register for ${b.nodeId} must be signed by that node's own key (its peer id)`
      )
    if (b.blsPublicKey !== undefined && b.blsProof !== undefined) {
      // rogue-key defence: a BLS key counts only with a proof that its holder signed this node id
      try {
        rules.verifyPossession({ nodeId: b.nodeId, blsPublicKey: b.blsPublicKey, proof: b.blsProof })
      } catch (err) {
        throw new TxFail(
          TxCode.UNAUTHORIZED,
          `node.register: the BLS key's proof of possession does not verify: ${(err as Error).message}`
        )
      }
    }
    const k = `node/${b.nodeId}`
    const old = get<NodeRecord>(c.s, k)
    if (old !== undefined) {
      c.s.del(`nodeplat/${old.platform ?? '*'}/${b.nodeId}`)
      c.s.del(`nodeos/${old.os ?? '*'}/${b.nodeId}`)
    }
    const sameBls =
      old?.blsPublicKey === undefined
        ? b.blsPublicKey === undefined
        : b.blsPublicKey !== undefined && equal(old.blsPublicKey, b.blsPublicKey)
    const keep =
      old !== undefined &&
      equal(old.ekCertificate, b.ekCertificate) &&
      equal(old.akPublic, b.akPublic) &&
      old.platform === b.platform &&
      old.os === b.os &&
      sameBls
    const rec: NodeRecord = {
      nodeId: b.nodeId,
      publicKey: pub,
      ekCertificate: b.ekCertificate,
      akPublic: b.akPublic,
      addrs: b.addrs,
      platform: b.platform,
      os: b.os,
      registeredAt: old?.registeredAt ?? c.height,
      status: keep ? old.status : 'registered',
      statusHeight: keep ? old.statusHeight : c.height,
      statusReason: keep
        ? old.statusReason
        : old === undefined
          ? undefined
          : 'identity, platform or OS changed at re-registration',
      round: old?.round,
      expiresAt: keep ? old.expiresAt : undefined,
      qcHash: keep ? old.qcHash : undefined,
      committee: keep ? old.committee : undefined,
      securityBits: keep ? old.securityBits : undefined,
      blsPublicKey: b.blsPublicKey,
      endpoint: b.endpoint,
      // the TLS key is the certifying round's: kept with the certification, dropped with it
      tlsKey: keep ? old.tlsKey : undefined,
      // the binding is of this EK certificate and AK: kept only while both are unchanged
      akBound:
        old !== undefined && equal(old.ekCertificate, b.ekCertificate) && equal(old.akPublic, b.akPublic)
          ? old.akBound
          : undefined
    }
    if (!keep) c.s.del(`cert/${b.nodeId}`)
    if (b.blsPublicKey !== undefined && c.s.get(`gv/${b.nodeId}`) !== undefined && !isDropped(c.s, b.nodeId))
      put(c.s, `gv/${b.nodeId}`, { publicKey: pub, blsPublicKey: b.blsPublicKey })
    put(c.s, k, rec)
    c.s.set(`nodeplat/${b.platform ?? '*'}/${b.nodeId}`, EMPTY)
    c.s.set(`nodeos/${b.os ?? '*'}/${b.nodeId}`, EMPTY)
    return undefined
  },
  'attest.request': (c, b) => {
    const rec = get<NodeRecord>(c.s, `node/${b.nodeId}`)
    if (rec === undefined)
      throw new TxFail(TxCode.NOT_FOUND, `node ${b.nodeId} is not registered; send node.register first`)
    if (!equal(rec.publicKey, c.signer))
      throw new TxFail(TxCode.UNAUTHORIZED, `attest.request for ${b.nodeId} must be signed by that node's own key`)
    const prev = get<AttestRequestRecord>(c.s, `req/${b.nodeId}`)
    if (prev !== undefined && b.round <= prev.round)
      throw new TxFail(TxCode.CONFLICT, `round ${b.round} must be greater than the latest round ${prev.round}`)
    if (c.cert.rules === 'current') return openRound(c, b, rec, prev)
    const req: AttestRequestRecord = {
      nodeId: b.nodeId,
      round: b.round,
      height: c.height,
      reset: b.reset,
      tlsKey: b.tlsKey
    }
    put(c.s, `req/${b.nodeId}`, req)
    c.s.set(`reqat/${c.height}/${b.nodeId}`, EMPTY)
    if (b.reset === true && rec.status === 'certified') {
      put(c.s, `node/${b.nodeId}`, {
        ...rec,
        status: 'registered',
        statusReason: `reset at round ${b.round} (reboot)`,
        statusHeight: c.height
      })
      c.s.del(`cert/${b.nodeId}`)
    }
    return undefined
  },
  'attest.record': (c, b, rules) => {
    const req = get<AttestRequestRecord>(c.s, `req/${b.nodeId}`)
    if (req === undefined) throw new TxFail(TxCode.NOT_FOUND, `node ${b.nodeId} has no attestation request`)
    if (b.round !== req.round)
      throw new TxFail(TxCode.CONFLICT, `round ${b.round} is not the node's latest request (round ${req.round})`)
    if (req.recordedAt !== undefined)
      throw new TxFail(
        TxCode.CONFLICT,
        `round ${b.round} of ${b.nodeId} was already recorded at height ${req.recordedAt}`
      )
    if (req.closedAt !== undefined)
      throw new TxFail(
        TxCode.CONFLICT,
        `round ${b.round} of ${b.nodeId} was closed at height ${req.closedAt} (${req.closeReason ?? 'failed'}); request a new round`
      )
    if (req.seed === undefined || (req.candidates === undefined && req.committee === undefined))
      throw new TxFail(
        TxCode.NOT_READY,
        `the committee seed for round ${b.round} is not fixed yet (request at height ${req.height}; the seed comes from the next block)`
      )
    const rec = get<NodeRecord>(c.s, `node/${b.nodeId}`)
    if (rec === undefined) throw new TxFail(TxCode.NOT_FOUND, `node ${b.nodeId} is not registered`)
    let out: ReturnType<QuorumRules['verifyCertificate']>
    try {
      out = rules.verifyCertificate({ qc: b.qc, ...committeeInput(c, req, b.nodeId) })
    } catch (err) {
      throw new TxFail(TxCode.QC_REJECTED, `quorum certificate rejected: ${(err as Error).message}`)
    }
    if (
      (out.outcome !== 'pass' && out.outcome !== 'fail') ||
      (out.expiresAt !== undefined && !Number.isSafeInteger(out.expiresAt)) ||
      !Array.isArray(out.committee) ||
      !out.committee.every(x => typeof x === 'string')
    ) {
      throw new TxFail(TxCode.QC_REJECTED, 'quorum rules returned an invalid result')
    }
    // v3 QCs carry no expiry: the chain sets it (certTtlMs); a signed one (v2, test double) may only shorten it
    const expiresAt = Math.min(out.expiresAt ?? Number.MAX_SAFE_INTEGER, c.time + c.cert.certTtlMs)
    if (out.outcome === 'pass' && expiresAt <= c.time)
      throw new TxFail(TxCode.QC_REJECTED, `certificate expires at ${expiresAt}, not after the block time ${c.time}`)
    const committee = [...out.committee]
    const qcHash = sha256(b.qc)
    if (c.cert.rules === 'current') return recordRound(c, b, req, rec, { ...out, expiresAt }, committee, qcHash)
    if (out.outcome === 'pass') {
      put(c.s, `node/${b.nodeId}`, {
        ...rec,
        status: 'certified',
        statusReason: undefined,
        statusHeight: c.height,
        round: b.round,
        expiresAt,
        qcHash,
        committee
      })
      put(c.s, `cert/${b.nodeId}`, { expiresAt })
    } else {
      put(c.s, `node/${b.nodeId}`, {
        ...rec,
        status: 'failed',
        statusReason: `committee quorum failed the node in round ${b.round}`,
        statusHeight: c.height,
        round: b.round,
        expiresAt: undefined,
        qcHash,
        committee
      })
      c.s.del(`cert/${b.nodeId}`)
    }
    put(c.s, `qc/${b.nodeId}`, {
      nodeId: b.nodeId,
      round: b.round,
      qc: b.qc,
      outcome: out.outcome,
      expiresAt,
      committee,
      height: c.height
    } satisfies QcRecord)
    put(c.s, `req/${b.nodeId}`, { ...req, recordedAt: c.height })
    return enc({ outcome: out.outcome, expiresAt })
  },
  'verifier.fault': (c, b, rules) => proveFault(c, b, rules),
  'app.publish': (c, b) => publishApp(c, b),
  'app.revoke': (c, b) => revokeApp(c, b),
  'usage.record': (c, b) => recordUsage(c, b)
}

function dbOpen(path: string): DatabaseSync {
  const db = new DatabaseSync(path)
  if (path !== ':memory:') db.exec('PRAGMA journal_mode = WAL')
  // FULL: a block acknowledged as committed survives power loss too, at one fsync per block.
  db.exec('PRAGMA synchronous = FULL')
  db.exec('CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID')
  return db
}

function encodeGenesis(g: Genesis): Uint8Array {
  return encode({
    chainId: g.chainId,
    genesisTime: g.genesisTime,
    initialHeight: g.initialHeight,
    validators: g.validators,
    verifiers: g.verifiers,
    committeeSize: g.committeeSize,
    certification: resolveCertification(g) as unknown as Canonical
  })
}

class App implements ChainApp {
  readonly db: DatabaseSync
  readonly #store: StateStore
  readonly #rules: QuorumRules
  readonly #appraiser: FaultAppraiser | undefined
  readonly #log: Logger
  readonly #metaGet
  readonly #metaPut
  #genesis: Genesis | undefined
  /** Resolved genesis certification parameters (defaults until initChain). */
  #cert: CertificationParams = resolveCertification({})
  #height = 0
  #time = 0
  #appHash: Uint8Array
  #pending: { height: number; time: number; writes: WriteSet; prepared: PreparedRoot } | undefined
  readonly #checkSeq = new Map<string, number>()
  /**
   * Transactions whose signature checkTx verified, by identity of the byte array: the producer
   * hands finalizeBlock the very arrays checkTx saw (never mutated), so verification runs once.
   */
  readonly #verified = new Map<Uint8Array, Validated>()

  constructor(opts: ChainAppOptions) {
    this.db = dbOpen(opts.path ?? ':memory:')
    this.#rules = opts.rules
    this.#appraiser = opts.appraiser
    this.#log = opts.logger ?? silentLogger('quorate:chain:app')
    this.#store = new StateStore(this.db)
    this.#metaGet = this.db.prepare('SELECT v FROM meta WHERE k = ?')
    this.#metaPut = this.db.prepare(
      'INSERT INTO meta (k, v) VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v'
    )
    this.#appHash = this.#store.root
    const g = this.#meta('genesis')
    if (g !== undefined) {
      const m = dec<Genesis>(g)
      this.#genesis = {
        chainId: m.chainId,
        genesisTime: m.genesisTime,
        initialHeight: m.initialHeight,
        validators: [...m.validators],
        verifiers: [...m.verifiers],
        committeeSize: m.committeeSize,
        certification: m.certification
      }
      this.#cert = resolveCertification(this.#genesis)
      const h = this.#meta('height')
      this.#height = h === undefined ? m.initialHeight - 1 : dec<number>(h)
      const t = this.#meta('time')
      this.#time = t === undefined ? m.genesisTime : dec<number>(t)
      const stored = this.#meta('appHash')
      if (stored !== undefined && !equal(stored, this.#appHash)) {
        throw new QuorateError(
          `state database is corrupt: recomputed app hash ${toHex(this.#appHash)} differs from the stored ${toHex(stored)} at height ${this.#height}`
        )
      }
    }
  }

  #meta(k: string): Uint8Array | undefined {
    const r = this.#metaGet.get(k) as { v: Uint8Array } | undefined
    return r === undefined ? undefined : new Uint8Array(r.v)
  }

  info(): AppInfo {
    return {
      initialized: this.#genesis !== undefined,
      chainId: this.#genesis?.chainId ?? '',
      height: this.#height,
      appHash: this.#appHash,
      time: this.#time,
      genesis: this.#genesis
    }
  }

  initChain(genesis: Genesis): Uint8Array {
    if (this.#genesis !== undefined) throw new QuorateError('the chain is already initialized')
    if (!CHAIN_ID_RE.test(genesis.chainId))
      throw new InvalidInputError('chain id must be 1–50 characters A-Z a-z 0-9 . _ -')
    if (!Number.isSafeInteger(genesis.initialHeight) || genesis.initialHeight < 1)
      throw new InvalidInputError('initial height must be ≥ 1')
    const cert = resolveCertification(genesis)
    const o = new Overlay(this.#store)
    for (const id of genesis.verifiers) o.set(`gv/${id}`, enc({ publicKey: peerIdToPublicKey(id) }))
    const prepared = this.#store.prepare(o.writes)
    this.db.exec('BEGIN IMMEDIATE')
    try {
      this.#store.persist(o.writes)
      this.#metaPut.run('genesis', encodeGenesis(genesis))
      this.#metaPut.run('height', enc(genesis.initialHeight - 1))
      this.#metaPut.run('time', enc(genesis.genesisTime))
      this.#metaPut.run('appHash', prepared.root)
      this.db.exec('COMMIT')
    } catch (err) {
      this.db.exec('ROLLBACK')
      throw err
    }
    this.#store.install(prepared)
    this.#genesis = {
      ...genesis,
      validators: [...genesis.validators],
      verifiers: [...genesis.verifiers],
      certification: cert
    }
    this.#cert = cert
    this.#height = genesis.initialHeight - 1
    this.#time = genesis.genesisTime
    this.#appHash = prepared.root
    return prepared.root
  }

  /** Everything that does not depend on state: size, encoding, version, chain, type, body, signature. */
  #validate(bytes: Uint8Array, hash?: Uint8Array, signatureChecked = false): Validated | TxResult {
    if (bytes.byteLength > MAX_TX_BYTES)
      return fail(TxCode.TOO_LARGE, `transaction of ${bytes.byteLength} bytes exceeds the limit of ${MAX_TX_BYTES}`)
    const cached = this.#verified.get(bytes)
    if (cached !== undefined) return cached
    let tx: DecodedTx
    try {
      tx = decodeTx(bytes, hash)
    } catch (err) {
      return fail(TxCode.MALFORMED, `malformed transaction: ${(err as Error).message}`)
    }
    if (tx.v !== TX_VERSION)
      return fail(
        TxCode.UNSUPPORTED_VERSION,
        `transaction version ${tx.v} is not supported (this chain speaks version ${TX_VERSION})`
      )
    const chainId = this.#genesis?.chainId
    if (tx.chainId !== chainId)
      return fail(TxCode.WRONG_CHAIN, `transaction is for chain "${tx.chainId}", this is "${chainId ?? ''}"`)
    if (!isTxType(tx.type))
      return fail(TxCode.UNKNOWN_TYPE, `unknown transaction type ${JSON.stringify(tx.type.slice(0, 64))}`)
    let body: TxBodies[TxType]
    try {
      body = parseBody(tx.type, tx.body)
    } catch (err) {
      return fail(TxCode.INVALID_BODY, `invalid ${tx.type} body: ${(err as Error).message}`)
    }
    if (!signatureChecked && !verifyTxSignature(tx))
      return fail(TxCode.BAD_SIGNATURE, 'bad signature: the ed25519 signature does not verify for the signer key')
    const v: Validated = {
      tx: { seq: tx.seq, signer: tx.signer, hash: tx.hash },
      type: tx.type,
      body,
      signerHex: toHex(tx.signer)
    }
    // bounded (oldest first): a tx checked but never delivered must not be kept forever; one
    // dropped here is simply validated again when delivered
    if (this.#verified.size >= VERIFIED_CACHE) {
      const first = this.#verified.keys().next()
      if (first.done !== true) this.#verified.delete(first.value)
    }
    this.#verified.set(bytes, v)
    return v
  }

  validateTx(bytes: Uint8Array): TxResult {
    if (this.#genesis === undefined) return fail(TxCode.WRONG_CHAIN, 'the chain is not initialized')
    const v = this.#validate(bytes)
    return 'tx' in v ? ok() : v
  }

  checkTx(bytes: Uint8Array, hash?: Uint8Array, signatureChecked = false): TxResult {
    if (this.#genesis === undefined) return fail(TxCode.WRONG_CHAIN, 'the chain is not initialized')
    const v = this.#validate(bytes, hash, signatureChecked)
    if (!('tx' in v)) return v
    const sh = v.signerHex
    const expected = this.#checkSeq.get(sh) ?? nextSeq(this.#store, sh)
    if (v.tx.seq !== expected)
      return fail(
        TxCode.BAD_SEQUENCE,
        `sequence ${v.tx.seq} is out of order: the account's next sequence is ${expected}`
      )
    this.#checkSeq.set(sh, expected + 1)
    return ok()
  }

  resetCheckState(): void {
    this.#checkSeq.clear()
  }

  finalizeBlock(req: FinalizeBlockRequest): FinalizeBlockResponse {
    if (this.#genesis === undefined) throw new QuorateError('finalizeBlock before initChain')
    if (this.#pending !== undefined) throw new QuorateError('finalizeBlock called twice without commit')
    if (req.height !== this.#height + 1) throw new QuorateError(`expected block ${this.#height + 1}, got ${req.height}`)
    if (!Number.isSafeInteger(req.time) || req.time < this.#time)
      throw new QuorateError(`block time ${req.time} is before the previous block time ${this.#time}`)
    const block = new Overlay(this.#store)
    this.#beginBlock(block, req)
    const txResults = req.txs.map(tx => this.#deliver(block, tx, req))
    const prepared = this.#store.prepare(block.writes)
    this.#pending = { height: req.height, time: req.time, writes: block.writes, prepared }
    return { txResults, appHash: prepared.root }
  }

  /**
   * Start of block H: closes the rounds whose deadline was H − 1 (current rules; O(rounds closed)
   * through the deadline index), then fixes the committee seed and candidate snapshot of the
   * requests made in block H − 1 (under the current rules also the committee size they draw).
   */
  #beginBlock(s: Overlay, req: FinalizeBlockRequest): void {
    const current = this.#cert.rules === 'current'
    if (current) {
      const expired = `rndexp/${req.height - 1}/`
      for (const [k] of s.scan(expired)) {
        s.del(k)
        s.del(`rnd/${k.slice(expired.length)}`)
      }
      const due = `rdl/${req.height - 1}/`
      for (const [k] of s.scan(due)) {
        const r = get<AttestRequestRecord>(s, `req/${k.slice(due.length)}`)
        if (isOpen(r) && r.deadline === req.height - 1)
          closeRound(s, this.#cert, r, req.height, `no quorum recorded by the deadline (height ${r.deadline})`)
        else s.del(k)
      }
    }
    const prefix = `reqat/${req.height - 1}/`
    let all: Array<{ nodeId: string; blsPublicKey: Uint8Array }> | undefined
    for (const [k] of s.scan(prefix)) {
      s.del(k)
      const id = k.slice(prefix.length)
      const r = get<AttestRequestRecord>(s, `req/${id}`)
      if (r === undefined || r.height !== req.height - 1 || r.seed !== undefined) continue
      const seed = committeeSeed(req.hash, id, r.round)
      const fixed = { seed, seedHeight: req.height, seedBlockHash: req.hash }
      if (!current) {
        put(s, `req/${id}`, { ...r, ...fixed, candidates: candidatesAt(s, req.time, id) })
        continue
      }
      // current rules keep the drawn committee, not every candidate: O(k) state per round and per
      // check. The candidate scan is done once per block (nothing in this loop changes it).
      all ??= blsCandidatesAt(s, req.time, '')
      const candidates = all.filter(x => x.nodeId !== id)
      const size = committeeFor(this.#rules, this.#cert, candidates.length)
      const committee =
        size.k === 0
          ? []
          : [...this.#rules.drawCommittee({ seed, nodeId: id, candidates: candidates.map(x => x.nodeId), k: size.k })]
      put(s, `req/${id}`, { ...r, ...fixed, committee, candidateCount: candidates.length, ...size })
    }
  }

  #deliver(block: Overlay, bytes: Uint8Array, req: FinalizeBlockRequest): TxResult {
    const v = this.#validate(bytes)
    if (!('tx' in v)) return v
    this.#verified.delete(bytes)
    const sh = v.signerHex
    const s = new Overlay(block)
    const seq = nextSeq(s, sh)
    if (v.tx.seq !== seq)
      return fail(TxCode.BAD_SEQUENCE, `sequence ${v.tx.seq} is out of order: the account's next sequence is ${seq}`)
    let data: Uint8Array | undefined
    try {
      const h = handlers[v.type] as (c: Ctx, b: TxBodies[TxType], r: QuorumRules) => Uint8Array | undefined
      data = h(
        {
          s,
          height: req.height,
          time: req.time,
          signer: v.tx.signer,
          txHash: v.tx.hash,
          cert: this.#cert,
          genesis: this.#genesis as Genesis,
          appraiser: this.#appraiser
        },
        v.body,
        this.#rules
      )
    } catch (err) {
      if (err instanceof TxFail) return fail(err.code, err.message)
      if (err instanceof InvalidInputError) return fail(TxCode.INVALID_BODY, err.message)
      throw err
    }
    put(s, `acct/${sh}`, { seq: seq + 1 })
    s.mergeInto(block)
    return ok(data)
  }

  commit(extra?: () => void): { height: number; appHash: Uint8Array } {
    const p = this.#pending
    if (p === undefined) throw new QuorateError('commit without finalizeBlock')
    this.db.exec('BEGIN IMMEDIATE')
    try {
      this.#store.persist(p.writes)
      this.#metaPut.run('height', enc(p.height))
      this.#metaPut.run('time', enc(p.time))
      this.#metaPut.run('appHash', p.prepared.root)
      extra?.()
      this.db.exec('COMMIT')
    } catch (err) {
      try {
        this.db.exec('ROLLBACK')
      } catch {}
      this.#pending = undefined
      throw err
    }
    this.#store.install(p.prepared)
    this.#pending = undefined
    this.#height = p.height
    this.#time = p.time
    this.#appHash = p.prepared.root
    this.#checkSeq.clear()
    this.#log.debug('committed', { height: p.height, writes: p.writes.size })
    return { height: p.height, appHash: p.prepared.root }
  }

  query(req: QueryRequest): QueryResponse {
    const height = this.#height
    const base = { height, codespace: CODESPACE }
    if (req.height !== undefined && req.height !== 0 && req.height !== height) {
      return {
        ...base,
        code: TxCode.NOT_FOUND,
        log: `only the latest height (${height}) can be queried, not ${req.height}`
      }
    }
    let params: Record<string, Canonical> = {}
    if (req.path !== '/key' && req.data !== undefined && req.data.byteLength > 0) {
      try {
        const d = decode(req.data, { maxBytes: 64 * 1024 })
        if (!is.map(d)) throw new InvalidInputError('query data must be a canonical CBOR map')
        params = d
      } catch (err) {
        return { ...base, code: TxCode.MALFORMED, log: `bad query data: ${(err as Error).message}` }
      }
    }
    try {
      if (req.path === '/key') {
        const raw = req.data ?? EMPTY
        if (raw.byteLength === 0 || raw.byteLength > 512 || raw.some(c => c < 0x21 || c > 0x7e))
          return {
            ...base,
            code: TxCode.MALFORMED,
            log: 'query /key: data must be a state key (1–512 printable ASCII characters)'
          }
        const key = utf8.decode(raw)
        const value = this.#store.get(key)
        if (value === undefined)
          return { ...base, code: TxCode.NOT_FOUND, log: `no state at key ${JSON.stringify(key)}`, key: req.data }
        const r: QueryResponse = { ...base, code: 0, log: '', key: req.data, value }
        if (req.prove === true)
          r.proofOps = [{ type: PROOF_TYPE, key: utf8.encode(key), data: encodeProof(this.#store.proof(key)) }]
        return r
      }
      // a Map: a path like "constructor" or "__proto__" must not find Object.prototype's members
      const q = queries.get(req.path)
      if (q === undefined)
        return {
          ...base,
          code: TxCode.UNKNOWN_TYPE,
          log: `unknown query path ${JSON.stringify(req.path.slice(0, 64))}; known: /key, ${[...queries.keys()].join(', ')}`
        }
      const result = q(this.#store, params, this.info())
      if (result === undefined) return { ...base, code: TxCode.NOT_FOUND, log: `nothing found for ${req.path}` }
      return { ...base, code: 0, log: '', value: encode(result as Canonical) }
    } catch (err) {
      if (err instanceof InvalidInputError) return { ...base, code: TxCode.INVALID_BODY, log: err.message }
      throw err
    }
  }

  close(): void {
    this.db.close()
  }
}

// ---- queries (read committed state; never write) ----
type Reader = StateStore
type Query = (s: Reader, p: Record<string, Canonical>, info: AppInfo) => unknown

/** A query parameter the caller gave (own property only: never one inherited from Object.prototype). */
const param = (p: Record<string, Canonical>, k: string): Canonical | undefined =>
  Object.hasOwn(p, k) ? p[k] : undefined

function pstr(p: Record<string, Canonical>, k: string, required: true): string
function pstr(p: Record<string, Canonical>, k: string, required?: false): string | undefined
function pstr(p: Record<string, Canonical>, k: string, required = false): string | undefined {
  const v = param(p, k)
  if (v === undefined) {
    if (required) throw new InvalidInputError(`query parameter ${k} is required`)
    return undefined
  }
  if (typeof v !== 'string' || v.length > 512 || /[^\x21-\x7e]/.test(v))
    throw new InvalidInputError(`query parameter ${k} must be a printable string`)
  return v
}

function records<T>(s: Reader, prefix: string): T[] {
  return s.scan(prefix).map(([, v]) => dec<T>(v))
}

export function nodeView(s: Reader, nodeId: string, now: number): NodeView | undefined {
  const gv = s.get(`gv/${nodeId}`) !== undefined
  const record = get<NodeRecord>(s, `node/${nodeId}`)
  if (record === undefined && !gv) return undefined
  const request = get<AttestRequestRecord>(s, `req/${nodeId}`)
  let effective: NodeView['effective']
  if (gv) effective = 'genesis-verifier'
  else if (record === undefined) effective = 'registered'
  else if (record.status === 'certified') effective = (record.expiresAt ?? 0) > now ? 'certified' : 'expired'
  else if (request !== undefined && request.recordedAt === undefined && request.closedAt === undefined)
    effective = 'pending'
  else effective = record.status
  const cooldown = get<CooldownRecord>(s, `cool/${nodeId}`)
  const fault = get<FaultRecord>(s, `faulty/${nodeId}`)
  return {
    nodeId,
    effective,
    certified: effective === 'certified' || effective === 'genesis-verifier',
    record,
    request,
    genesisVerifier: gv,
    ...(cooldown === undefined ? {} : { cooldown }),
    ...(fault === undefined ? {} : { fault })
  }
}

/** The `name` parameter of an app query: an app name (so it can never reach another key prefix). */
function appName(p: Record<string, Canonical>): string {
  const name = pstr(p, 'name', true)
  if (!NAME_RE.test(name)) throw new InvalidInputError('query parameter name must be an app name (a-z 0-9 . _ -)')
  return name
}

const toRefSet = (name: string, r: { version: string; bank: RefSet['bank']; pcrs: RefSet['pcrs'] }): RefSet => ({
  name,
  version: r.version,
  bank: r.bank,
  pcrs: r.pcrs
})

const queries = new Map<string, Query>(
  Object.entries({
    '/info': (s, _p, i) => ({
      chainId: i.chainId,
      height: i.height,
      appHash: i.appHash,
      time: i.time,
      entries: s.size
    }),
    '/account': (s, p) => {
      const signer = param(p, 'signer')
      if (!(signer instanceof Uint8Array) || signer.byteLength !== 32)
        throw new InvalidInputError('query parameter signer must be a 32-byte public key')
      return { seq: nextSeq(s, toHex(signer)) }
    },
    '/vendor': (s, p) => get<VendorRecord>(s, `vendor/${pstr(p, 'name', true)}`),
    '/ekcas': (s, p) => {
      const vendor = pstr(p, 'vendor')
      return {
        ekCas: records<EkCaRecord>(s, vendor === undefined ? 'ekca/' : `ekca/${vendor}/`).filter(
          r => r.revokedAt === undefined
        )
      }
    },
    '/firmware': (s, p) => {
      const vendor = pstr(p, 'vendor', true)
      const platform = pstr(p, 'platform')
      const version = pstr(p, 'version')
      const prefix =
        platform === undefined
          ? `fw/${vendor}/`
          : version === undefined
            ? `fw/${vendor}/${platform}/`
            : `fw/${vendor}/${platform}/${version}`
      return {
        firmware: records<FirmwareRecord>(s, prefix).filter(r => version === undefined || r.version === version)
      }
    },
    '/os': (s, p) => {
      const name = pstr(p, 'name', true)
      const version = pstr(p, 'version')
      return { os: records<OsRecord>(s, `os/${name}/`).filter(r => version === undefined || r.version === version) }
    },
    '/refs': (s, p) => {
      const vendor = pstr(p, 'vendor')
      const platform = pstr(p, 'platform')
      const os = pstr(p, 'os')
      if (platform !== undefined && vendor === undefined)
        throw new InvalidInputError('query /refs: platform needs vendor')
      const fwPrefix =
        vendor === undefined ? 'fw/' : platform === undefined ? `fw/${vendor}/` : `fw/${vendor}/${platform}/`
      const out: ReferenceValues = {
        ekCas: records<EkCaRecord>(s, 'ekca/')
          .filter(r => r.revokedAt === undefined)
          .map(r => r.certificate),
        firmware: records<FirmwareRecord>(s, fwPrefix)
          .filter(r => r.revokedAt === undefined)
          .map(r => toRefSet(`${r.vendor}/${r.platform}`, r)),
        os: records<OsRecord>(s, os === undefined ? 'os/' : `os/${os}/`)
          .filter(r => r.revokedAt === undefined)
          .map(r => toRefSet(r.name, r))
      }
      return out
    },
    '/image': (s, p) => {
      const name = pstr(p, 'name')
      const digest = pstr(p, 'digest')
      if (name === undefined && digest === undefined) throw new InvalidInputError('query /image needs name or digest')
      if (name !== undefined)
        return {
          images: records<ImageRecord>(s, `img/${name}#`).filter(r => digest === undefined || r.digest === digest)
        }
      const names = s.scan(`imgd/${digest ?? ''}#`).map(([k]) => k.slice(k.indexOf('#') + 1))
      return { images: names.map(n => get<ImageRecord>(s, `img/${n}#${digest ?? ''}`)).filter(r => r !== undefined) }
    },
    '/node': (s, p, i) => nodeView(s, pstr(p, 'nodeId', true), i.time),
    '/nodes': (s, p, i) => {
      const status = pstr(p, 'status') ?? 'certified'
      if (status !== 'certified' && status !== 'all')
        throw new InvalidInputError('query /nodes: status must be certified or all')
      const ids = new Set<string>()
      for (const [k] of s.scan('gv/')) ids.add(k.slice(3))
      for (const [k] of s.scan(status === 'all' ? 'node/' : 'cert/')) ids.add(k.slice(k.indexOf('/') + 1))
      const views = [...ids]
        .sort()
        .map(id => nodeView(s, id, i.time))
        .filter((v): v is NodeView => v !== undefined)
      return { nodes: status === 'all' ? views : views.filter(v => v.certified) }
    },
    '/candidates': (s, p, i) => {
      const ex = pstr(p, 'exclude') ?? ''
      // current rules: only who can sign a verdict (a registered BLS key, not removed) is a candidate
      const ids =
        i.genesis !== undefined && resolveCertification(i.genesis).rules === 'current'
          ? blsCandidatesAt(s, i.time, ex).map(c => c.nodeId)
          : candidatesAt(s, i.time, ex)
      return {
        candidates: ids.map(id => ({ nodeId: id, publicKey: peerIdToPublicKey(id) })),
        height: i.height,
        time: i.time
      }
    },
    '/seed': (s, p, i) => {
      const nodeId = pstr(p, 'nodeId', true)
      const r = get<AttestRequestRecord>(s, `req/${nodeId}`)
      const round = param(p, 'round')
      if (r === undefined || (is.uint(round ?? null) && round !== r.round))
        return { status: 'none', nodeId } satisfies SeedView
      const ids = r.committee ?? r.candidates
      if (r.seed === undefined || ids === undefined)
        return {
          status: 'pending',
          nodeId,
          round: r.round,
          requestHeight: r.height,
          ...(r.tlsKey === undefined ? {} : { tlsKey: r.tlsKey })
        } satisfies SeedView
      // current rules serve the drawn committee as the candidate list with k = its size: drawing
      // k of k gives the committee back in the same order, so older clients derive the same one
      return {
        status: 'ready',
        nodeId,
        round: r.round,
        requestHeight: r.height,
        seedHeight: r.seedHeight,
        seed: r.seed,
        k: r.committee !== undefined ? r.committee.length : (r.k ?? i.genesis?.committeeSize ?? DEFAULT_COMMITTEE_SIZE),
        ...(r.securityBits === undefined ? {} : { securityBits: r.securityBits }),
        ...(r.deadline === undefined ? {} : { deadline: r.deadline }),
        ...(r.committee === undefined ? {} : { committee: r.committee, candidateCount: r.candidateCount }),
        ...(r.tlsKey === undefined ? {} : { tlsKey: r.tlsKey }),
        candidates: ids.map(id => {
          const rec = get<NodeRecord>(s, `node/${id}`)
          return {
            nodeId: id,
            publicKey: peerIdToPublicKey(id),
            addrs: rec?.addrs ?? [],
            ...(rec?.blsPublicKey === undefined ? {} : { blsPublicKey: rec.blsPublicKey })
          }
        })
      } satisfies SeedView
    },
    '/qc': (s, p) => get<QcRecord>(s, `qc/${pstr(p, 'nodeId', true)}`),
    // apps (issue 13): keys as laid out above publishApp; a light client proves app/<name> and
    // app/<name>/<version> through /key instead
    '/apps': s => {
      const apps: Array<{ record: AppRecord; current?: AppVersionRecord }> = []
      for (const [k, v] of s.scan('app/')) {
        if (k.indexOf('/', 4) >= 0) continue // app/<name>/<version>
        const record = dec<AppRecord>(v)
        const current = record.current === undefined ? undefined : get<AppVersionRecord>(s, `${k}/${record.current}`)
        apps.push(current === undefined ? { record } : { record, current })
      }
      return { apps }
    },
    '/app': (s, p) => {
      const name = appName(p)
      const record = get<AppRecord>(s, `app/${name}`)
      if (record === undefined) return undefined
      const versions = record.versions
        .map(v => get<AppVersionRecord>(s, `app/${name}/${v}`))
        .filter((v): v is AppVersionRecord => v !== undefined)
      const current = versions.find(v => v.version === record.current)
      return { record, ...(current === undefined ? {} : { current }), versions } satisfies AppView
    },
    '/app/version': (s, p) => {
      const name = appName(p)
      const version = pstr(p, 'version', true)
      if (!VERSION_RE.test(version)) throw new InvalidInputError('query parameter version must be an app version')
      return get<AppVersionRecord>(s, `app/${name}/${version}`)
    },
    '/app/usage': (s, p) => {
      const name = appName(p)
      if (s.get(`app/${name}`) === undefined) return undefined
      const totals = get<AppUsageTotals>(s, `appuse/${name}`) ?? {
        app: name,
        requests: 0,
        bytesIn: 0,
        bytesOut: 0,
        records: 0,
        nodes: 0
      }
      return {
        totals,
        nodes: records<AppNodeUsage>(s, `appusen/${name}/`),
        recent: records<AppUsageEntry>(s, `appuser/${name}/`).reverse()
      } satisfies AppUsageView
    }
  } satisfies Record<string, Query>)
)

export function createChainApp(opts: ChainAppOptions): ChainApp {
  return new App(opts)
}
