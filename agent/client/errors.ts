// What a client refuses, one class per check (STYLE §6). Every refusal is `reject`: the node (or
// the chain answer about it) is not acceptable, nothing was sent to it. A node that could not be
// reached is `retry`. `check` names the check that failed, in the order docs/clients.md lists them.
import { InvalidInputError, TransientError } from '../../encoding/errors.ts'

/** The checks, in the order a client runs them (docs/clients.md). */
export type ClientCheck = 'chain' | 'app' | 'certification' | 'endpoint' | 'qc' | 'tls-key' | 'tls-identity'

/** A check about one node failed: the request was not sent to it. */
export class NodeCheckError extends InvalidInputError {
  override readonly code: string = 'ERR_NODE_CHECK'
  readonly check: ClientCheck
  readonly nodeId: string | undefined
  constructor(check: ClientCheck, nodeId: string | undefined, message: string, options?: { cause?: unknown }) {
    super(`${nodeId === undefined ? '' : `node ${nodeId}: `}${check} check failed: ${message}`, options)
    this.check = check
    this.nodeId = nodeId
  }

  override toJSON(): Record<string, unknown> {
    return { ...super.toJSON(), check: this.check, nodeId: this.nodeId }
  }
}

/** The chain says the node is not certified now: never certified, expired, failed or revoked. */
export class NodeNotCertifiedError extends NodeCheckError {
  override readonly code: string = 'ERR_NOT_CERTIFIED'
  constructor(nodeId: string, message: string) {
    super('certification', nodeId, message)
  }
}

/** The node's quorum certificate does not verify here (committee, signer bitmap, BLS aggregate, hash). */
export class QcCheckError extends NodeCheckError {
  override readonly code: string = 'ERR_QC_CHECK'
  constructor(nodeId: string, message: string, options?: { cause?: unknown }) {
    super('qc', nodeId, message, options)
  }
}

/** The TLS key the server presented is not the one the node's certification binds: refused before any request byte. */
export class TlsKeyMismatchError extends NodeCheckError {
  override readonly code: string = 'ERR_TLS_KEY_MISMATCH'
  constructor(nodeId: string | undefined, message: string) {
    super('tls-key', nodeId, message)
  }
}

/** The server's certificate names another node or chain (or none). */
export class TlsIdentityError extends NodeCheckError {
  override readonly code: string = 'ERR_TLS_IDENTITY'
  constructor(nodeId: string | undefined, message: string) {
    super('tls-identity', nodeId, message)
  }
}

/** The node has no usable client endpoint on chain. */
export class NoEndpointError extends NodeCheckError {
  override readonly code: string = 'ERR_NO_ENDPOINT'
  constructor(nodeId: string, message: string) {
    super('endpoint', nodeId, message)
  }
}

/** A chain answer could not be verified (no proof, a proof that fails, a header too old). */
export class UnverifiedChainError extends NodeCheckError {
  override readonly code: string = 'ERR_UNVERIFIED_CHAIN'
  constructor(message: string, options?: { cause?: unknown }) {
    super('chain', undefined, message, options)
  }
}

/** The app is not on chain, or revoked. */
export class AppNotServableError extends NodeCheckError {
  override readonly code: string = 'ERR_APP_UNAVAILABLE'
  constructor(app: string, message: string) {
    super('app', undefined, `app ${JSON.stringify(app)}: ${message}`)
  }
}

/** A node could not be reached (connection refused, reset, timed out). */
export class NodeUnreachableError extends TransientError {
  override readonly code: string = 'ERR_NODE_UNREACHABLE'
}

/** No node served the request: every attempt is listed. */
export class NoNodeServedError extends TransientError {
  override readonly code: string = 'ERR_NO_NODE_SERVED'
  readonly attempts: readonly unknown[]
  readonly refusals: readonly string[]
  constructor(message: string, attempts: readonly unknown[], refusals: readonly string[]) {
    super(refusals.length === 0 ? message : `${message}\n  - ${refusals.join('\n  - ')}`)
    this.attempts = attempts
    this.refusals = refusals
  }

  override toJSON(): Record<string, unknown> {
    return { ...super.toJSON(), attempts: this.attempts, refusals: this.refusals }
  }
}
