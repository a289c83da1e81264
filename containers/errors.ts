// One class per failure of the container path (STYLE §6), grouped by what the caller should do.
// The gate's refusals are all 'reject': the node refused to run something and changed nothing.
import { DecodeError, QuorateError, TransientError } from '../encoding/errors.ts'

/** Step 1 of the gate: this node is not certified on chain right now. */
export class NotCertifiedError extends QuorateError {
  override readonly disposition = 'reject' as const
  override readonly code: string = 'ERR_NOT_CERTIFIED'
  readonly reason: string
  constructor(reason = 'the node has no valid certification on chain', options?: { cause?: unknown }) {
    super(
      `node is not certified: ${reason}; tenant images run only on certified nodes (wait for certification or re-attest)`,
      options
    )
    this.reason = reason
  }
}

/** Step 2: no `image.publish` for this name on chain. */
export class ImageNotPublishedError extends QuorateError {
  override readonly disposition = 'reject' as const
  override readonly code: string = 'ERR_IMAGE_NOT_PUBLISHED'
  constructor(name: string) {
    super(`image ${JSON.stringify(name)} is not published on chain; publish it first (quorate image publish)`)
  }
}

/** Step 2: the image was published and later revoked. */
export class ImageRevokedError extends QuorateError {
  override readonly disposition = 'reject' as const
  override readonly code: string = 'ERR_IMAGE_REVOKED'
  constructor(name: string, digest: string) {
    super(`image ${JSON.stringify(name)} (${digest}) is revoked on chain; it will not be run`)
  }
}

/** Step 3: the bytes received do not hash to the CID they were requested under. */
export class ContentMismatchError extends QuorateError {
  override readonly disposition = 'reject' as const
  override readonly code: string = 'ERR_CONTENT_MISMATCH'
}

/** Step 4: the tar's image config digest (Docker image ID) is not the one on chain. */
export class ImageDigestMismatchError extends QuorateError {
  override readonly disposition = 'reject' as const
  override readonly code: string = 'ERR_IMAGE_DIGEST_MISMATCH'
  readonly expected: string
  readonly actual: string
  constructor(expected: string, actual: string) {
    super(`image content has config digest ${actual} but the chain records ${expected}; nothing was loaded`)
    this.expected = expected
    this.actual = actual
  }
}

/** Step 5: Docker reported another image ID after loading. */
export class DockerImageMismatchError extends QuorateError {
  override readonly disposition = 'reject' as const
  override readonly code: string = 'ERR_DOCKER_IMAGE_MISMATCH'
}

/** The tar is not a well-formed `docker save` archive. */
export class InvalidImageTarError extends DecodeError {
  override readonly code: string = 'ERR_IMAGE_TAR'
}

/** No peer could provide the content (network, provider down): try again later. */
export class FetchError extends TransientError {
  override readonly code: string = 'ERR_FETCH'
}

/** A provider that speaks our block protocol answered that it cannot serve the content. */
export class ProviderRefusedError extends FetchError {
  override readonly code: string = 'ERR_PROVIDER_REFUSED'
  readonly reason: string
  constructor(reason: string, options?: { cause?: unknown }) {
    super(`provider refused: ${reason}`, options)
    this.reason = reason
  }
}

/** Docker refused or failed an operation (daemon down, out of space). */
export class DockerError extends TransientError {
  override readonly code: string = 'ERR_DOCKER'
}

/**
 * The Docker engine cannot give the gate's step 5 its meaning: with the containerd image store,
 * `docker load` reports manifest digests as image IDs, not the config digest on chain.
 */
export class UnsupportedEngineError extends QuorateError {
  override readonly disposition = 'stop' as const
  override readonly code: string = 'ERR_DOCKER_ENGINE'
}

/** The container was created but exited or never answered. */
export class ContainerStartError extends QuorateError {
  override readonly disposition = 'reject' as const
  override readonly code: string = 'ERR_CONTAINER_START'
}

/**
 * Measuring into the TPM failed: extending the container PCR or appending the event log (the
 * launch is abandoned), or replaying a recorded boot (agent/measure.ts).
 */
export class MeasurementError extends QuorateError {
  override readonly disposition = 'stop' as const
  override readonly code: string = 'ERR_MEASUREMENT'
}
