// What one certification round does to the agent: its lifecycle state (agent/lifecycle.ts), the
// container gate (ContainerRunner.setCertification) and the round metrics. The round itself
// (agent/p2p runCertificationRound) is a port, so this state handling is tested with a fake.
//
// A round starts from `awaiting-certification` — entered when the chain opens the round, from
// `revoked` or `degraded` too — or, as a re-attestation, from `certified`. It ends in `certified`
// (pass) or `revoked` (a QC of failures). Both ends allow the next round, so a node may fail any
// number of rounds and then pass without an illegal transition.
import type { CertificationStatus } from '../containers/runner.ts'
import type { RoundProgress, RoundResult } from './p2p/index.ts'
import type { Lifecycle } from './lifecycle.ts'
import type { Counter, Gauge, Metrics } from './metrics.ts'

export interface CertificationInit {
  readonly lifecycle: Lifecycle
  /** Runs one round (runCertificationRound), reporting progress. */
  readonly round: (onProgress: (p: RoundProgress) => void) => Promise<RoundResult>
  /** The container gate: tenants run only while this says certified. */
  readonly gate: { setCertification(status: CertificationStatus): Promise<void> }
  readonly metrics: Metrics
  readonly onProgress?: (p: RoundProgress) => void
}

interface RoundMetrics {
  rounds: Counter
  verdicts: Counter
  certified: Gauge
  expires: Gauge
}

function roundMetrics(m: Metrics): RoundMetrics {
  return {
    rounds: m.counter(
      'quorate_rounds_total',
      'certification rounds of this node by outcome (error: the round did not end)'
    ),
    verdicts: m.counter('quorate_verdicts_received_total', "verdicts received in this node's rounds"),
    certified: m.gauge('quorate_certified', '1 while this node holds a valid quorum certificate'),
    expires: m.gauge('quorate_certification_expires_seconds', 'when the current certification expires (unix time)')
  }
}

export class Certification {
  readonly #init: CertificationInit
  readonly #m: RoundMetrics
  #last?: RoundResult

  constructor(init: CertificationInit) {
    this.#init = init
    this.#m = roundMetrics(init.metrics)
  }

  get last(): RoundResult | undefined {
    return this.#last
  }

  /** One round; resolves with its result (pass or fail) once state, gate and metrics reflect it. */
  async run(): Promise<RoundResult> {
    const life = this.#init.lifecycle
    let r: RoundResult
    try {
      r = await this.#init.round(p => {
        if (p.type === 'requested' && life.can('awaiting-certification')) this.#enter(p.round)
        this.#init.onProgress?.(p)
      })
    } catch (err) {
      this.#m.rounds.inc({ outcome: 'error' })
      throw err
    }
    this.#last = r
    this.#m.rounds.inc({ outcome: r.outcome })
    this.#m.verdicts.inc({ pass: 'true' }, r.pass)
    this.#m.verdicts.inc({ pass: 'false' }, r.fail)
    // stop() may have begun while the round ended: the agent is going down, leave its state be
    if (life.state.kind === 'stopping' || life.state.kind === 'stopped') return r
    this.#enter(r.round)
    if (r.outcome === 'pass') {
      // the QC is on chain: open the gate first, then say so
      await this.#init.gate.setCertification({ certified: true, expiresAt: r.expiresAt })
      life.to({ kind: 'certified', round: r.round, expiresAt: r.expiresAt })
      this.#m.certified.set(1)
      this.#m.expires.set(Math.floor(r.expiresAt / 1000))
    } else {
      // the state says revoked first; closing the gate stops tenants and may fail on Docker
      life.to({
        kind: 'revoked',
        reason: `committee refused round ${r.round} (${r.fail} of ${r.committee.length} failed)`
      })
      this.#m.certified.set(0)
      await this.#init.gate.setCertification({ certified: false, reason: 'committee refused certification' })
    }
    return r
  }

  /** Certification ended outside a round (chain revocation, expiry). */
  async lost(status: CertificationStatus): Promise<void> {
    this.#init.lifecycle.to({ kind: 'revoked', reason: status.reason ?? 'certification ended' })
    this.#m.certified.set(0)
    await this.#init.gate.setCertification(status)
  }

  // A round in progress is `awaiting-certification`, except a re-attestation, which stays
  // `certified` until its outcome (the old certificate still holds on chain meanwhile).
  #enter(round: number): void {
    const life = this.#init.lifecycle
    const kind = life.state.kind
    if (kind === 'certified') return
    if (kind === 'awaiting-certification' && life.state.round === round) return
    life.to({ kind: 'awaiting-certification', round })
  }
}
