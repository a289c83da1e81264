// Length-prefixed frames over a byte stream: an unsigned-varint length (as in libp2p's
// length-prefixed framing; strict: minimal, at most 5 bytes) then that many bytes. One reader for
// the p2p attestation messages (agent/p2p/framing.ts) and the block stream (containers/transfer.ts).
// Every read has a size limit, checked on the length prefix before anything is buffered.
import { Uint8ArrayList } from 'uint8arraylist'
import { concat } from './bytes.ts'
import { TooLargeError, TransientError } from './errors.ts'
import { decodeUvarint, encodeUvarint } from './varint.ts'

/** The stream ended inside a frame (or, where a frame was required, before one). */
export class StreamClosedError extends TransientError {
  override readonly code: string = 'ERR_STREAM_CLOSED'
}

/** The read's AbortSignal fired before the frame arrived. */
export class StreamTimeoutError extends TransientError {
  override readonly code: string = 'ERR_STREAM_TIMEOUT'
}

/** A length prefix is at most 5 bytes (2^35 - 1): every limit we read with is far below that. */
const MAX_PREFIX_BYTES = 5
/** A frame received in more pieces than this is joined (see FrameReader.nextList). */
const MAX_PIECES = 256

/** One frame: the length prefix and the bytes, kept apart (no copy). */
export function frame(data: Uint8Array): Uint8ArrayList {
  return new Uint8ArrayList(encodeUvarint(data.byteLength), data)
}

/**
 * Reads frames from a stream of chunks. Errors: DecodeError for a malformed prefix, TooLargeError
 * for a frame over the read's limit, StreamClosedError when the stream ends inside a frame,
 * StreamTimeoutError when the read's signal fires first.
 */
export class FrameReader {
  readonly #buf = new Uint8ArrayList()
  readonly #it: AsyncIterator<Uint8Array | Uint8ArrayList>
  #ended = false

  constructor(source: AsyncIterable<Uint8Array | Uint8ArrayList>) {
    this.#it = source[Symbol.asyncIterator]()
  }

  /** The next frame (joined), or undefined at a clean end of stream. */
  async next(maxBytes: number, signal?: AbortSignal): Promise<Uint8Array | undefined> {
    const pieces = await this.nextList(maxBytes, signal)
    return pieces === undefined ? undefined : pieces.length === 1 ? pieces[0] : concat(pieces)
  }

  /**
   * The next frame as the received pieces (no copy), or undefined at a clean end of stream. A frame
   * that arrived in more than MAX_PIECES pieces is joined into one, so a peer sending tiny muxer
   * frames cannot make us hold millions of small views.
   */
  async nextList(maxBytes: number, signal?: AbortSignal): Promise<Uint8Array[] | undefined> {
    let head: { value: number; length: number } | undefined
    while (
      (head = decodeUvarint(this.#buf, { maxBytes: MAX_PREFIX_BYTES, what: 'frame length prefix' })) === undefined
    ) {
      if (!(await this.#fill(signal))) {
        if (this.#buf.byteLength === 0) return undefined
        throw new StreamClosedError('the stream ended inside a frame header')
      }
    }
    const { value: len, length: i } = head
    if (len > maxBytes) throw new TooLargeError(`frame of ${len} bytes exceeds the limit of ${maxBytes}`)
    while (this.#buf.byteLength < i + len) {
      if (!(await this.#fill(signal))) throw new StreamClosedError('the stream ended inside a frame')
    }
    const pieces = [...this.#buf.sublist(i, i + len)]
    this.#buf.consume(i + len)
    return pieces.length > MAX_PIECES ? [concat(pieces)] : pieces
  }

  /** Appends the next chunk; false at the end of the stream. */
  async #fill(signal?: AbortSignal): Promise<boolean> {
    if (this.#ended) return false
    const r = await this.#pull(signal)
    if (r.done === true) {
      this.#ended = true
      return false
    }
    this.#buf.append(r.value)
    return true
  }

  async #pull(signal?: AbortSignal): Promise<IteratorResult<Uint8Array | Uint8ArrayList>> {
    if (signal === undefined) return await this.#it.next()
    const late = (): StreamTimeoutError =>
      new StreamTimeoutError(
        `no data from the peer in time: ${String(signal.reason instanceof Error ? signal.reason.message : signal.reason)}`
      )
    if (signal.aborted) throw late()
    let onAbort: (() => void) | undefined
    const aborted = new Promise<never>((_resolve, reject) => {
      onAbort = () => {
        reject(late())
      }
      signal.addEventListener('abort', onAbort, { once: true })
    })
    try {
      return await Promise.race([this.#it.next(), aborted])
    } finally {
      if (onAbort !== undefined) signal.removeEventListener('abort', onAbort)
    }
  }
}
