// Error base shared by every module (STYLE.md §6). Each failure is its own class with a `name`,
// a default message, a `cause`, and a `disposition` that tells the caller what to do next:
//   'retry'  — transient (network, TPM busy, chain not reachable): try again later
//   'stop'   — a local fault the operator must fix (config, missing device, corrupt state)
//   'reject' — the input is bad or violates policy: refuse it, change nothing
export type Disposition = 'retry' | 'stop' | 'reject'

export class QuorateError extends Error {
  readonly disposition: Disposition = 'stop'
  /** Stable machine-readable code, e.g. `ERR_BAD_SIGNATURE`. */
  readonly code: string = 'ERR_QUORATE'
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = new.target.name
  }

  toJSON(): Record<string, unknown> {
    return { name: this.name, code: this.code, disposition: this.disposition, message: this.message }
  }
}

export class InvalidInputError extends QuorateError {
  override readonly disposition = 'reject' as const
  override readonly code: string = 'ERR_INVALID_INPUT'
}

export class DecodeError extends InvalidInputError {
  override readonly code: string = 'ERR_DECODE'
}

export class TooLargeError extends InvalidInputError {
  override readonly code: string = 'ERR_TOO_LARGE'
}

export class TransientError extends QuorateError {
  override readonly disposition = 'retry' as const
  override readonly code: string = 'ERR_TRANSIENT'
}

export class ConfigError extends QuorateError {
  override readonly disposition = 'stop' as const
  override readonly code: string = 'ERR_CONFIG'
}

/**
 * Several checks failed, reported at once rather than just the first (STYLE §6): every violation
 * is listed, so the caller can fix them all before trying again.
 */
export class PolicyViolationsError extends InvalidInputError {
  override readonly code: string = 'ERR_POLICY'
  readonly violations: readonly string[]
  constructor(
    violations: readonly string[],
    message = `${violations.length} policy check(s) failed: ${violations.join('; ')}`,
    options?: { cause?: unknown }
  ) {
    super(message, options)
    this.violations = violations
  }

  override toJSON(): Record<string, unknown> {
    return { ...super.toJSON(), violations: this.violations }
  }
}
