// The agent's lifecycle as an explicit state machine over a discriminated union (STYLE §7).
//
//   booting ──▶ measuring ──▶ registering ──▶ awaiting-certification ◀─────────────────────┐
//                                              │          │      ▲  │                      │
//                                         pass │     fail │      └──┘ a later round opens  │
//                                              ▼          ▼                                │
//                     re-attest passes ┌─▶ certified ──▶ revoked ── the next round opens ──┤
//                                      └──────┘    re-attest fails; QC of failures,        │
//                                                  revoked reference value, reboot         │
//   degraded (transient fault: chain, TPM or Docker down) ── the next round opens ─────────┘
//     ▲ from every state above, and from itself (another fault)
//
// A round that fails lands in `revoked`, from which the next round starts: a node may fail any
// number of rounds and pass the next. A re-attestation stays `certified` until its outcome (the
// certificate on chain still holds meanwhile). Every state ends in `stopping` → `stopped` on
// SIGTERM. Transitions not drawn here are refused, so a bug cannot, say, jump from `registering`
// to `certified`, or from `revoked` to `certified`, without a round.
import { QuorateError } from '../encoding/errors.ts'

export type AgentState =
  | { readonly kind: 'booting' }
  | { readonly kind: 'measuring' }
  | { readonly kind: 'registering' }
  | { readonly kind: 'awaiting-certification'; readonly round: number }
  | { readonly kind: 'certified'; readonly round: number; readonly expiresAt: number }
  | { readonly kind: 'degraded'; readonly reason: string; readonly previous: AgentState['kind'] }
  | { readonly kind: 'revoked'; readonly reason: string }
  | { readonly kind: 'stopping' }
  | { readonly kind: 'stopped' }

export type StateKind = AgentState['kind']

const allowed: Record<StateKind, readonly StateKind[]> = {
  booting: ['measuring', 'degraded', 'stopping'],
  measuring: ['registering', 'degraded', 'stopping'],
  registering: ['awaiting-certification', 'degraded', 'stopping'],
  'awaiting-certification': ['certified', 'revoked', 'awaiting-certification', 'degraded', 'stopping'],
  certified: ['certified', 'revoked', 'degraded', 'stopping'],
  revoked: ['awaiting-certification', 'degraded', 'stopping'],
  degraded: ['awaiting-certification', 'degraded', 'stopping'],
  stopping: ['stopped'],
  stopped: []
}

/** A bug in the agent: it asked for a transition the diagram does not draw. */
export class IllegalTransitionError extends QuorateError {
  override readonly code: string = 'ERR_ILLEGAL_TRANSITION'
  constructor(from: StateKind, to: StateKind) {
    super(`agent lifecycle: ${from} → ${to} is not allowed`)
  }
}

export class Lifecycle {
  #state: AgentState = { kind: 'booting' }
  #since = Date.now()
  readonly #listeners = new Set<(s: AgentState, prev: AgentState) => void>()
  readonly history: Array<{ at: number; state: AgentState }> = [{ at: Date.now(), state: { kind: 'booting' } }]

  get state(): AgentState {
    return this.#state
  }
  get since(): number {
    return this.#since
  }

  can(to: StateKind): boolean {
    return allowed[this.#state.kind].includes(to)
  }

  to(next: AgentState): void {
    if (!this.can(next.kind)) throw new IllegalTransitionError(this.#state.kind, next.kind)
    const prev = this.#state
    this.#state = next
    this.#since = Date.now()
    this.history.push({ at: this.#since, state: next })
    if (this.history.length > 100) this.history.shift()
    for (const l of this.#listeners) l(next, prev)
  }

  onChange(fn: (s: AgentState, prev: AgentState) => void): () => void {
    this.#listeners.add(fn)
    return () => {
      this.#listeners.delete(fn)
    }
  }
}
