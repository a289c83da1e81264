// One certification round, driven by the node being certified. The node dials out to every
// member (DESIGN: nodes need no inbound port for their own certification):
//   attest.request on chain → wait for the seed block → derive the committee from chain data →
//   open /quorate/certify/1.0.0 to every member in parallel and collect their nonces (and
//   credential challenges, only until the chain records the AK–EK binding) until all answered or
//   the challenge window closed → ONE quote over all nonces (and the TLS key hash the request
//   named, docs/tls.md) → same bundle to every member →
//   collect BLS-signed verdicts, each checked on arrival → as soon as > 2/3 signed the same
//   verdict, aggregate them into a QC v3 and submit attest.record.
// A round the node gives up on still ends on chain: the chain closes it as failed at its deadline.
// A member that crashes or stays silent only costs its vote: every wait is bounded, and the round
// ends early once the threshold is reached or can no longer be.
import type { PeerId, Stream } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'
import { selectCommittee, threshold } from '../../attestation/quorum/committee.ts'
import { CertificateCollector } from '../../attestation/quorum/certificate.ts'
import { QuorateError, TransientError } from '../../encoding/errors.ts'
import type { Logger } from '../../encoding/log.ts'
import { silentLogger } from '../../encoding/log.ts'
import { Framed } from './framing.ts'
import { dialTarget } from './host.ts'
import {
  PROTOCOL_CERTIFY,
  MESSAGE_LIMITS,
  encodeHello,
  decodeChallenge,
  encodeEvidenceMsg,
  decodeVerdictMsg,
  encodeCertificateMsg,
  type Challenge
} from './messages.ts'
import type { AttestationResponder } from './responder.ts'

/** What the round driver needs from the chain (chain/client adapts to it; tests use a fake). */
export interface ChainPort {
  /**
   * Submits attest.request for the node's next round (naming `tlsKey`, the TLS key hash the
   * round's quote will bind) and returns the round number.
   */
  requestAttestation(nodeId: string, opts?: { signal?: AbortSignal; tlsKey?: Uint8Array }): Promise<{ round: number }>
  /** Waits for the seed block after the request and returns the committee draw inputs. */
  waitForRound(
    nodeId: string,
    round: number,
    opts?: { signal?: AbortSignal }
  ): Promise<{
    chainId: string
    seed: Uint8Array
    k: number
    /** Node ids to draw k from (the chain serves the drawn committee itself; drawing k of k gives it back). */
    candidates: readonly string[]
    /** Registered BLS verdict keys of the candidates. */
    blsKeys: ReadonlyMap<string, Uint8Array>
  }>
  /** Registered listen addresses of a node (asked for committee members only). */
  addresses(nodeId: string, opts?: { signal?: AbortSignal }): Promise<readonly string[]>
  /** Submits attest.record with the QC; `expiresAt` is the expiry the chain set (a QC v3 carries none). */
  recordAttestation(
    nodeId: string,
    round: number,
    qc: Uint8Array,
    opts?: { signal?: AbortSignal }
  ): Promise<{ height?: number; txHash?: string; expiresAt?: number }>
}

/** The libp2p node, as far as the driver needs one. */
export interface DialingHost {
  readonly peerId: { toString: () => string }
  dialProtocol(
    peer: PeerId | Multiaddr | Multiaddr[],
    protocols: string | string[],
    opts?: { signal?: AbortSignal }
  ): Promise<Stream>
  /**
   * Open connections to a peer (libp2p's getConnections). When the host is still connected to a
   * member (authenticated as that peer id), the round opens its stream on that connection without
   * asking the chain for the member's addresses: 48 chain reads a round fewer at k = 48.
   */
  getConnections?(peer?: PeerId): ReadonlyArray<{ readonly status: string }>
}

export type RoundProgress =
  | { type: 'requested'; round: number }
  | { type: 'committee'; round: number; committee: readonly string[]; threshold: number }
  | { type: 'challenged'; member: string; credential: boolean }
  | { type: 'member-failed'; member: string; phase: 'challenge' | 'verdict'; error: string }
  | { type: 'quoted'; nonces: number }
  | { type: 'verdict'; member: string; pass: boolean }
  | { type: 'recorded'; outcome: 'pass' | 'fail'; height?: number }

export interface RoundOptions {
  readonly host: DialingHost
  readonly responder: AttestationResponder
  readonly chain: ChainPort
  /**
   * sha256 of the DER SPKI of the node's TLS key (agent/tls.ts): the request names it, the quote
   * binds it, members check both agree, and a passing QC records it on chain. Absent: none bound.
   */
  readonly tlsKey?: Uint8Array
  /** How long to wait for members' challenges (default 5 s). */
  readonly challengeTimeoutMs?: number
  /** Once a threshold of members answered, how long the others still get (default 1 s). */
  readonly challengeGraceMs?: number
  /** How long to wait for verdicts after sending evidence (default 15 s). */
  readonly verdictTimeoutMs?: number
  /** Certification lifetime to report when the chain does not say (default 24 h, the genesis default). */
  readonly certTtlMs?: number
  readonly onProgress?: (e: RoundProgress) => void
  readonly signal?: AbortSignal
  readonly logger?: Logger
  readonly now?: () => number
}

export interface RoundResult {
  readonly round: number
  readonly outcome: 'pass' | 'fail'
  readonly expiresAt: number
  readonly committee: readonly string[]
  readonly threshold: number
  readonly qc: Uint8Array
  /** Claims the quorum found failed (empty on pass). */
  readonly failedClaims: readonly string[]
  readonly pass: number
  readonly fail: number
  /** Members that did not answer in time or sent something invalid. */
  readonly unresponsive: readonly string[]
  readonly height?: number
}

export class RoundFailedError extends TransientError {
  override readonly code: string = 'ERR_ROUND_FAILED'
}

interface Session {
  member: string
  framed: Framed
  challenge: Challenge
}

function errText(err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}

function anySignal(signals: readonly (AbortSignal | undefined)[]): AbortSignal {
  return AbortSignal.any(signals.filter((s): s is AbortSignal => s !== undefined))
}

export async function runCertificationRound(opts: RoundOptions): Promise<RoundResult> {
  const log = opts.logger ?? silentLogger('quorate:p2p:round')
  const progress = opts.onProgress ?? (() => {})
  const nodeId = opts.host.peerId.toString()
  const signal = opts.signal
  signal?.throwIfAborted()
  const { round } = await opts.chain.requestAttestation(
    nodeId,
    opts.tlsKey === undefined ? { signal } : { signal, tlsKey: opts.tlsKey }
  )
  progress({ type: 'requested', round })
  const draw = await opts.chain.waitForRound(nodeId, round, { signal })
  const committee = selectCommittee(
    draw.seed,
    draw.candidates.filter(id => id !== nodeId),
    draw.k
  )
  if (committee.length === 0) throw new RoundFailedError('no certified nodes or genesis verifiers to form a committee')
  const need = threshold(committee.length)
  progress({ type: 'committee', round, committee, threshold: need })
  log.info('certification round', { round, committee, threshold: need })
  const unresponsive = new Set<string>()
  const fail = (member: string, phase: 'challenge' | 'verdict', err: unknown): void => {
    unresponsive.add(member)
    progress({ type: 'member-failed', member, phase, error: errText(err) })
    log.warn('committee member failed', { member, phase, error: errText(err) })
  }

  const { ekPublic } = await opts.responder.identity()

  // 1. challenges, in parallel, bounded by one window for all
  // Once the threshold has answered, the rest get a short grace period, not the whole window.
  const graceAbort = new AbortController()
  let graceTimer: ReturnType<typeof setTimeout> | undefined
  const challengeSignal = anySignal([signal, graceAbort.signal, AbortSignal.timeout(opts.challengeTimeoutMs ?? 5_000)])
  const sessions: Session[] = []
  const hello = encodeHello({ nodeId, round, ekPublic }) // the same for every member: encoded once
  await Promise.all(
    committee.map(async member => {
      let framed: Framed | undefined
      try {
        const { peerId } = dialTarget(member)
        const connected = opts.host.getConnections?.(peerId).some(c => c.status === 'open') === true
        const stream = await opts.host.dialProtocol(
          connected
            ? peerId
            : dialTarget(member, await opts.chain.addresses(member, { signal: challengeSignal })).addrs,
          PROTOCOL_CERTIFY,
          { signal: challengeSignal }
        )
        framed = new Framed(stream)
        await framed.write(hello)
        const challenge = decodeChallenge(await framed.read(MESSAGE_LIMITS.small, challengeSignal))
        sessions.push({ member, framed, challenge })
        progress({ type: 'challenged', member, credential: challenge.credential !== undefined })
        if (sessions.length === need && sessions.length < committee.length) {
          graceTimer = setTimeout(() => {
            graceAbort.abort(new Error('challenge grace period over'))
          }, opts.challengeGraceMs ?? 1_000)
        }
      } catch (err) {
        framed?.abort(err as Error)
        fail(member, 'challenge', err)
      }
    })
  )
  clearTimeout(graceTimer)
  signal?.throwIfAborted()
  if (sessions.length < need) {
    for (const s of sessions) s.framed.abort(new Error('round abandoned'))
    throw new RoundFailedError(
      `only ${sessions.length} of ${committee.length} committee members answered; ${need} needed`
    )
  }

  // 2. credentials (TPM, one at a time — the TPM serialises anyway), then ONE quote
  const secrets = new Map<string, Uint8Array>()
  for (const s of sessions) {
    if (s.challenge.credential === undefined) continue
    try {
      secrets.set(s.member, await opts.responder.activate(s.challenge.credential))
    } catch (err) {
      // the member will fail our identity; still send evidence so it signs that, rather than hang
      log.warn('credential activation failed', { member: s.member, error: errText(err) })
    }
  }
  const order = sessions.map(s => s.challenge.nonce)
  const { bytes } = await opts.responder.evidence(order, { tlsKey: opts.tlsKey })
  progress({ type: 'quoted', nonces: order.length })

  // 3. verdicts: each checked on arrival, their signatures together (one aggregate verification)
  //    when a group reaches the threshold — each arrives on the stream we opened to its member, so
  //    a verdict naming anyone else is refused first (`from`); stop as soon as the outcome is settled
  const collector = new CertificateCollector({
    chainId: draw.chainId,
    nodeId,
    round,
    committee: committee.map(id => ({ nodeId: id, blsPublicKey: draw.blsKeys.get(id) ?? new Uint8Array(0) })),
    deferSignatures: true
  })
  const verdictAbort = new AbortController()
  const verdictSignal = anySignal([signal, verdictAbort.signal, AbortSignal.timeout(opts.verdictTimeoutMs ?? 15_000)])
  let isSettled = false
  const LATE = new Error('outcome settled before this verdict arrived')
  let settle: () => void = () => {}
  const settled = new Promise<void>(resolve => {
    settle = () => {
      isSettled = true
      resolve()
    }
  })
  const answered: Session[] = [] // kept open: they get the QC
  const evidenceMsg = encodeEvidenceMsg({ evidence: bytes }) // for every member without a credential secret
  const pending = sessions.map(async s => {
    try {
      const secret = secrets.get(s.member)
      await s.framed.write(secret === undefined ? evidenceMsg : encodeEvidenceMsg({ evidence: bytes, secret }))
      const vm = decodeVerdictMsg(await s.framed.read(MESSAGE_LIMITS.small, verdictSignal))
      // once the outcome is settled a late verdict changes nothing: taking it would cost one more
      // signature check (a pairing, ≈ 1.5 ms) per late member before the QC could be built
      if (isSettled) throw LATE
      const v = collector.add(vm.verdict, { from: s.member })
      if (v.member !== s.member) throw new QuorateError(`verdict signed by ${v.member}, expected ${s.member}`)
      progress({ type: 'verdict', member: s.member, pass: v.outcome === 'pass' })
      answered.push(s)
    } catch (err) {
      s.framed.abort(err as Error)
      if (!verdictAbort.signal.aborted && err !== LATE) fail(s.member, 'verdict', err)
    }
    if (!isSettled && (collector.outcome() !== undefined || collector.undecidable())) settle()
  })
  await Promise.race([settled, Promise.allSettled(pending)])
  verdictAbort.abort(new Error('outcome settled'))
  signal?.throwIfAborted()

  const outcome = collector.outcome()
  if (outcome === undefined) {
    for (const s of answered) await s.framed.close()
    const c = collector.counts
    throw new RoundFailedError(
      `no quorum: ${c.pass} pass, ${c.fail} fail, ${unresponsive.size} unresponsive; ${need} of ${committee.length} needed to sign one verdict (the chain closes the round as failed at its deadline)`
    )
  }
  const cert = collector.certificate()
  // the members who answered get the QC first: should our attest.record not make it (our RPC
  // down, this process gone), any of them can record it before the deadline (best effort, bounded)
  const qcMsg = encodeCertificateMsg(cert.qc)
  await Promise.allSettled(
    answered.map(async s => {
      try {
        await s.framed.write(qcMsg)
      } finally {
        await s.framed.close()
      }
    })
  )
  const rec = await opts.chain.recordAttestation(nodeId, round, cert.qc, { signal })
  progress({ type: 'recorded', outcome, height: rec.height })
  const counts = collector.counts
  const expiresAt = rec.expiresAt ?? (opts.now ?? Date.now)() + (opts.certTtlMs ?? 24 * 3600_000)
  return {
    round,
    outcome,
    expiresAt,
    committee,
    threshold: need,
    qc: cert.qc,
    failedClaims: cert.message.failedClaims,
    pass: counts.pass,
    fail: counts.fail,
    unresponsive: [...unresponsive],
    height: rec.height
  }
}
