// Verifier side: a committee member appraises a node that dials it on /quorate/certify/1.0.0 and
// signs a verdict. Before appraisal it checks, itself, what ties the evidence to this session:
//   - the stream's authenticated peer (noise) is the node the round is about;
//   - this member is on the committee that the chain's seed draws for (node, round);
//   - its own nonce is in committeeNonces, and evidence.nonce = committeeNonce(committeeNonces,
//     tlsKey) = the quote's extraData (so a replayed bundle or a quote for another nonce fails);
//   - the TLS key hash the quote binds (evidence.tlsKey) is exactly the one the node's
//     attest.request put on chain for this round (none if it asked none): a passing QC makes the
//     chain record that key, so it must be the key the TPM-quoted node holds (docs/tls.md);
//   - the EK certificate and AK in the bundle are the ones the node registered on chain, and the
//     AK was bound to that EK by TPM2_ActivateCredential — proven once: after the first quorum
//     passed the node the chain records the binding (akBound) and no member challenges it again,
//     so a round costs the node one quote and no activation (members also cache their own check).
// The appraisal proper (quote signature, PCRs vs reference values, event logs) is injected.
// The verdict (BLS, v3) commits to the evidence digest and the failed claims, and the member
// keeps the evidence it judged for a retention window: if its verdict contradicts the appraisal
// of that evidence, anyone holding both can prove the fault on chain (verifier.fault).
import { randomBytes } from 'node:crypto'
import type { Stream } from '@libp2p/interface'
import { decodeEvidence, committeeNonce, type Evidence } from '../../attestation/evidence.ts'
import { parseAttest, TPM_GENERATED_VALUE, TPM_ST_ATTEST_QUOTE } from '../../attestation/tpm2.ts'
import { selectCommittee } from '../../attestation/quorum/committee.ts'
import {
  encodeMemberVerdict,
  signMemberVerdict,
  normalizeClaims,
  type MemberVerdict
} from '../../attestation/quorum/verdict.ts'
import type { VerdictSigner } from '../../attestation/quorum/keys.ts'
import type { BlsSigner } from '../../attestation/quorum/bls.ts'
import { equal, equalConstantTime, sha256, toHex } from '../../encoding/bytes.ts'
import { encode } from '../../encoding/canonical.ts'
import { DecodeError, InvalidInputError } from '../../encoding/errors.ts'
import type { Logger } from '../../encoding/log.ts'
import { silentLogger } from '../../encoding/log.ts'
import { Framed } from './framing.ts'
import {
  PROTOCOL_CERTIFY,
  MESSAGE_LIMITS,
  decodeHello,
  encodeChallenge,
  decodeEvidenceMsg,
  encodeVerdictMsg,
  decodeCertificateMsg,
  refuse,
  type CredentialChallenge
} from './messages.ts'
import type { ProtocolHost } from './responder.ts'

export class NotOnCommitteeError extends InvalidInputError {
  override readonly code: string = 'ERR_NOT_ON_COMMITTEE'
}
export class UnknownRoundError extends InvalidInputError {
  override readonly code: string = 'ERR_UNKNOWN_ROUND'
}
export class PeerMismatchError extends InvalidInputError {
  override readonly code: string = 'ERR_PEER_MISMATCH'
}
export class RoundAlreadyJudgedError extends InvalidInputError {
  override readonly code: string = 'ERR_ROUND_JUDGED'
}
/** The evidence does not answer this session (replay, other nonce, other TPM identity). */
export class EvidenceBindingError extends InvalidInputError {
  override readonly code: string = 'ERR_EVIDENCE_BINDING'
  readonly claim: 'freshness' | 'identity'
  constructor(claim: 'freshness' | 'identity', message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.claim = claim
  }
}
/**
 * The evidence bundle could not be decoded at all: nothing in it was checked, so a verdict on it
 * fails every claim (a member), not only freshness. A class of its own so that no caller has to
 * recognise it by its message.
 */
export class MalformedEvidenceError extends EvidenceBindingError {
  override readonly code: string = 'ERR_EVIDENCE_MALFORMED'
  constructor(cause: unknown) {
    super('freshness', `evidence is malformed: ${cause instanceof Error ? cause.message : String(cause)}`, { cause })
  }
}

/** What a member reads from the chain. */
export interface MemberChainPort {
  /** The committee draw for an attestation request, once its seed block exists. */
  roundInfo(
    nodeId: string,
    round: number
  ): Promise<
    | {
        seed: Uint8Array
        candidates: readonly string[]
        k: number
        /** The TLS key hash the node's attest.request asked this round to bind (SeedView.tlsKey). */
        tlsKey?: Uint8Array
      }
    | undefined
  >
  /** The node's registration (EK certificate and AK public it registered; akBound: a quorum already checked the AK–EK binding). */
  nodeRecord(
    nodeId: string
  ): Promise<{ ekCertificate: Uint8Array; akPublic: Uint8Array; akBound?: boolean } | undefined>
  /**
   * Submits attest.record with `qc`, signed by this member, if the round is still open on chain
   * (the node did not record it); true when it did. Absent: this member only reads the chain.
   */
  recordQc?(nodeId: string, round: number, qc: Uint8Array): Promise<boolean>
}

/** Appraisal summary a verdict is built from (attestation `appraise` → this, via an adapter). */
export interface AppraisalSummary {
  readonly ok: boolean
  /** sha256 of the appraisal's canonical encoding. */
  readonly digest: Uint8Array
  /** Names of the failed claims (`identity`, `firmware`, `os`, `containers`, `freshness`). */
  readonly failed: readonly string[]
  /** The full appraisal, for display. */
  readonly detail?: unknown
}

/**
 * `nonce` is this verifier's own nonce (with a shared quote it is one of committeeNonces);
 * `credentialActivated` says the AK was proven (now or earlier, cached) to live beside the EK.
 */
export type Appraise = (
  evidence: Evidence,
  ctx: {
    readonly nodeId: string
    readonly nonce: Uint8Array
    readonly credentialActivated: boolean
    readonly signal?: AbortSignal
  }
) => Promise<AppraisalSummary>

/** Verifier-side TPM2_MakeCredential against the EK in the certificate, naming the AK. */
/** `ekPublic` is what the node presents; implementations must check it is the certificate's key. */
export type MakeCredential = (input: {
  readonly ekCertificate: Uint8Array
  readonly ekPublic: Uint8Array
  readonly akPublic: Uint8Array
}) => Promise<CredentialChallenge & { readonly secret: Uint8Array }>

export interface MemberOptions {
  /** The member's node identity (its node id names it in verdicts). */
  readonly signer: VerdictSigner
  /** The member's BLS verdict key (registered on chain with a proof of possession). */
  readonly bls: BlsSigner
  /** The chain the verdicts are for (signed into every verdict); a function is asked once, when first needed. */
  readonly chainId: string | (() => Promise<string>)
  readonly chain: MemberChainPort
  readonly appraise: Appraise
  readonly makeCredential: MakeCredential
  /** How long the evidence judged and the verdict given are kept, for fault proofs (default 7 days). */
  readonly retentionMs?: number
  /** At most this many judged rounds are kept (oldest dropped first; default 10,000). */
  readonly retentionMax?: number
  /** After the node hands over the QC, how long to give the node's own attest.record before recording it ourselves (default 5 s). */
  readonly recordQcAfterMs?: number
  /** Deadline for each message from the node (default 15 s: the node waits for the other members). */
  readonly timeoutMs?: number
  /** How long to wait for our chain view to show the round's seed (default 2 s). */
  readonly seedWaitMs?: number
  readonly now?: () => number
  readonly logger?: Logger
}

/**
 * Checks that `evidence` answers a session with nonce `nonce`, (if given) the registered identity
 * and (if `round` is given) binds exactly the TLS key hash the round's request named — none when
 * it named none. Throws EvidenceBindingError naming the claim that fails (a wrong TLS key fails
 * freshness: the quote does not answer this round's request; the chain never judges freshness in
 * fault proofs, FAULT_CLAIMS).
 */
export function checkEvidenceBinding(
  evidence: Evidence,
  nonce: Uint8Array,
  registered?: { ekCertificate: Uint8Array; akPublic: Uint8Array },
  round?: { tlsKey?: Uint8Array }
): void {
  const list = evidence.committeeNonces
  if (list === undefined || !list.some(n => equal(n, nonce)))
    throw new EvidenceBindingError(
      'freshness',
      'my nonce is not among the committee nonces (replayed or foreign evidence)'
    )
  if (round !== undefined) {
    const want = round.tlsKey
    const got = evidence.tlsKey
    if (want === undefined && got !== undefined)
      throw new EvidenceBindingError('freshness', 'the quote binds a TLS key the round did not ask to bind')
    if (want !== undefined && (got === undefined || !equal(want, got)))
      throw new EvidenceBindingError(
        'freshness',
        got === undefined
          ? 'the quote binds no TLS key; the round asked to bind one'
          : `the quote binds TLS key ${toHex(got).slice(0, 16)}…, not the round's ${toHex(want).slice(0, 16)}…`
      )
  }
  if (!equal(committeeNonce(list, evidence.tlsKey), evidence.nonce))
    throw new EvidenceBindingError(
      'freshness',
      evidence.tlsKey === undefined
        ? 'evidence nonce is not the hash of the committee nonces'
        : 'evidence nonce is not the hash of the committee nonces and the TLS key'
    )
  let extraData: Uint8Array
  try {
    const a = parseAttest(evidence.quote.attest)
    if (a.magic !== TPM_GENERATED_VALUE || a.type !== TPM_ST_ATTEST_QUOTE)
      throw new DecodeError('not a TPM-generated quote')
    extraData = a.extraData
  } catch (err) {
    throw new EvidenceBindingError('freshness', `quote is unreadable: ${(err as Error).message}`)
  }
  if (!equal(extraData, evidence.nonce))
    throw new EvidenceBindingError('freshness', 'the quote was taken for another nonce')
  if (registered !== undefined) {
    if (!equal(registered.ekCertificate, evidence.ekCertificate))
      throw new EvidenceBindingError('identity', 'EK certificate differs from the one registered on chain')
    if (!equal(registered.akPublic, evidence.akPublic))
      throw new EvidenceBindingError('identity', 'AK differs from the one registered on chain')
  }
}

/** Every claim an appraisal makes (what malformed evidence fails). */
export const ALL_CLAIMS = ['identity', 'firmware', 'os', 'containers', 'freshness']

/** The failing appraisal for evidence that never reached appraisal (a binding failure). */
export function failedAppraisal(error: string, failed: readonly string[]): AppraisalSummary {
  return { ok: false, failed, digest: sha256(encode({ error, failed: [...failed] })), detail: { error } }
}

/** What a member keeps of a round it judged: the evidence bytes, its verdict, and when. */
export interface JudgedRound {
  readonly evidence: Uint8Array
  readonly verdict: MemberVerdict
  readonly at: number
}

export class CommitteeMember {
  readonly #o: MemberOptions
  readonly #log: Logger
  readonly #bound = new Set<string>() // sha256(ekCert ‖ akPublic) hex: AK bound to EK
  readonly #kept = new Map<string, JudgedRound>() // `${nodeId}/${round}` → evidence and verdict (insertion order = age)
  #chainId: string | undefined
  readonly #judged = new Map<string, number>() // `${nodeId}/${round}` → time, bounded
  /** Sessions served (tests and metrics). */
  sessions = 0

  constructor(opts: MemberOptions) {
    this.#o = opts
    this.#log = opts.logger ?? silentLogger('quorate:p2p:member')
  }

  get nodeId(): string {
    return this.#o.signer.nodeId
  }

  async register(host: ProtocolHost): Promise<void> {
    await host.handle(
      PROTOCOL_CERTIFY,
      async (stream, connection) => {
        await this.serve(stream, connection.remotePeer.toString())
      },
      { maxInboundStreams: 64 }
    )
  }

  async unregister(host: ProtocolHost): Promise<void> {
    await host.unhandle(PROTOCOL_CERTIFY)
  }

  /** One certification session with the node authenticated as `remoteNodeId`. */
  async serve(stream: Stream, remoteNodeId: string): Promise<void> {
    const f = new Framed(stream)
    const timeout = this.#o.timeoutMs ?? 15_000
    try {
      const hello = decodeHello(await f.read(MESSAGE_LIMITS.small, AbortSignal.timeout(timeout)))
      if (hello.nodeId !== remoteNodeId)
        throw new PeerMismatchError(`session for ${hello.nodeId} opened by ${remoteNodeId}`)
      const key = `${hello.nodeId}/${hello.round}`
      if (this.#judged.has(key)) throw new RoundAlreadyJudgedError(`already judged ${key}`)
      // The node's registration is read while the round is (two chain reads in parallel: one
      // RPC round trip less before the challenge goes out).
      const registeredP = this.#o.chain.nodeRecord(hello.nodeId)
      registeredP.catch(() => {}) // awaited below unless the round check throws first
      // The node saw the seed block; our chain view may lag a little behind (another RPC node).
      let info = await this.#o.chain.roundInfo(hello.nodeId, hello.round)
      for (let waited = 0; info === undefined && waited < (this.#o.seedWaitMs ?? 2_000); waited += 100) {
        await new Promise(resolve => setTimeout(resolve, 100))
        info = await this.#o.chain.roundInfo(hello.nodeId, hello.round)
      }
      if (info === undefined) throw new UnknownRoundError(`no attestation request with a seed for ${key} on chain`)
      const committee = selectCommittee(
        info.seed,
        info.candidates.filter(c => c !== hello.nodeId),
        info.k
      )
      if (!committee.includes(this.nodeId))
        throw new NotOnCommitteeError(`${this.nodeId} is not on the committee for ${key}`)
      const registered = await registeredP
      if (registered === undefined) throw new UnknownRoundError(`node ${hello.nodeId} is not registered`)
      this.#markJudged(key)
      this.sessions++

      const nonce = new Uint8Array(randomBytes(32))
      const bindKey = toHex(sha256(encode([registered.ekCertificate, registered.akPublic])))
      let cred: (CredentialChallenge & { secret: Uint8Array }) | undefined
      let credError: EvidenceBindingError | undefined
      // the chain records the binding once a quorum checked it: no second challenge for that AK
      if (registered.akBound === true) this.#bound.add(bindKey)
      if (!this.#bound.has(bindKey)) {
        try {
          cred = await this.#o.makeCredential({ ...registered, ekPublic: hello.ekPublic })
        } catch (err) {
          // an EK that is not the certificate's key: answer with a failing verdict, not silence
          credError = new EvidenceBindingError('identity', `cannot challenge the EK: ${(err as Error).message}`)
        }
      }
      await f.write(
        encodeChallenge({
          nonce,
          credential:
            cred !== undefined
              ? { credentialBlob: cred.credentialBlob, encryptedSecret: cred.encryptedSecret, ekKind: cred.ekKind }
              : undefined
        })
      )

      const msg = decodeEvidenceMsg(await f.read(MESSAGE_LIMITS.evidence, AbortSignal.timeout(timeout)))
      const { verdict } = await this.judge(
        {
          nodeId: hello.nodeId,
          round: hello.round,
          nonce,
          registered,
          tlsKey: info.tlsKey,
          credentialSecret: cred?.secret,
          credentialError: credError,
          bindKey
        },
        msg
      )
      await f.write(encodeVerdictMsg({ verdict: encodeMemberVerdict(verdict) }))
      // the node hands the QC to the members who answered once it has one; a member records it
      // if the node has not after a while (a round the node drops is closed at its deadline anyway)
      let qc: Uint8Array | undefined
      try {
        qc = decodeCertificateMsg(await f.read(MESSAGE_LIMITS.small, AbortSignal.timeout(timeout)))
      } catch {}
      await f.close()
      if (qc !== undefined) this.#backupRecord(hello.nodeId, hello.round, qc)
    } catch (err) {
      this.#log.warn('certification session refused', { remote: remoteNodeId, error: err })
      await refuse(f, err)
    }
  }

  /**
   * Appraises the node's answer and signs a verdict. Binding failures (credential, nonce,
   * identity) and undecodable evidence give a failing verdict, not silence: the node's round can
   * then end with a fail QC instead of hanging.
   */
  async judge(
    s: {
      nodeId: string
      round: number
      nonce: Uint8Array
      registered: { ekCertificate: Uint8Array; akPublic: Uint8Array }
      /** The TLS key hash the round's request named (SeedView.tlsKey); the quote must bind exactly it. */
      tlsKey?: Uint8Array
      credentialSecret?: Uint8Array
      credentialError?: EvidenceBindingError
      bindKey: string
    },
    msg: { evidence: Uint8Array; secret?: Uint8Array }
  ): Promise<{ verdict: MemberVerdict; appraisal: AppraisalSummary }> {
    const now = (this.#o.now ?? Date.now)()
    let appraisal: AppraisalSummary
    try {
      if (s.credentialError !== undefined) throw s.credentialError
      if (s.credentialSecret !== undefined) {
        if (msg.secret === undefined || !equalConstantTime(msg.secret, s.credentialSecret))
          throw new EvidenceBindingError(
            'identity',
            'credential not activated: the AK is not proven to live beside the EK'
          )
        this.#bound.add(s.bindKey)
      }
      let evidence: Evidence
      try {
        evidence = decodeEvidence(msg.evidence)
      } catch (err) {
        throw new MalformedEvidenceError(err)
      }
      checkEvidenceBinding(evidence, s.nonce, s.registered, { tlsKey: s.tlsKey })
      appraisal = await this.#o.appraise(evidence, {
        nodeId: s.nodeId,
        nonce: s.nonce,
        credentialActivated: this.#bound.has(s.bindKey)
      })
    } catch (err) {
      if (!(err instanceof EvidenceBindingError)) throw err
      const failed = err instanceof MalformedEvidenceError ? ALL_CLAIMS : [err.claim]
      appraisal = failedAppraisal(err.message, failed)
    }
    // The verdict commits to the evidence bundle as received (sha256 of its canonical bytes) and
    // the failed claims; identical verdicts of honest members aggregate into one signature.
    const failed = appraisal.ok ? [] : normalizeClaims(appraisal.failed).slice(0, 16)
    this.#chainId ??= typeof this.#o.chainId === 'string' ? this.#o.chainId : await this.#o.chainId()
    const verdict = signMemberVerdict(
      {
        chainId: this.#chainId,
        nodeId: s.nodeId,
        round: s.round,
        outcome: appraisal.ok ? 'pass' : 'fail',
        evidenceDigest: sha256(msg.evidence),
        failedClaims: !appraisal.ok && failed.length === 0 ? ['unspecified'] : failed
      },
      this.nodeId,
      this.#o.bls
    )
    this.#keep(`${s.nodeId}/${s.round}`, { evidence: msg.evidence, verdict, at: now })
    this.#log.info('verdict', { node: s.nodeId, round: s.round, pass: appraisal.ok, failed: appraisal.failed })
    return { verdict, appraisal }
  }

  #backupRecord(nodeId: string, round: number, qc: Uint8Array): void {
    const record = this.#o.chain.recordQc
    if (record === undefined) return
    const timer = setTimeout(() => {
      record.call(this.#o.chain, nodeId, round, qc).then(
        done => {
          if (done) {
            this.qcsRecorded++
            this.#log.info('recorded the QC the node did not', { node: nodeId, round })
          }
        },
        (err: unknown) => {
          this.#log.debug('backup attest.record not taken', { node: nodeId, round, err })
        }
      )
    }, this.#o.recordQcAfterMs ?? 5_000)
    timer.unref()
  }

  /** QCs this member recorded because the node had not (tests and metrics). */
  qcsRecorded = 0

  /** The evidence judged and the verdict given for a round, while retained (fault proofs, audits). */
  judged(nodeId: string, round: number): JudgedRound | undefined {
    this.#expire()
    return this.#kept.get(`${nodeId}/${round}`)
  }

  #keep(key: string, j: JudgedRound): void {
    this.#kept.delete(key)
    this.#kept.set(key, j)
    this.#expire()
    const max = this.#o.retentionMax ?? 10_000
    for (const k of this.#kept.keys()) {
      if (this.#kept.size <= max) break
      this.#kept.delete(k)
    }
  }

  #expire(): void {
    const cutoff = (this.#o.now ?? Date.now)() - (this.#o.retentionMs ?? 7 * 24 * 3600_000)
    for (const [k, j] of this.#kept) {
      if (j.at > cutoff) break
      this.#kept.delete(k)
    }
  }

  #markJudged(key: string): void {
    if (this.#judged.size >= 10_000) {
      const oldest = [...this.#judged.entries()].sort((a, b) => a[1] - b[1]).slice(0, 5_000)
      for (const [k] of oldest) this.#judged.delete(k)
    }
    this.#judged.set(key, Date.now())
  }
}
