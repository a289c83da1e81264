// Length-prefixed messages over a libp2p stream: unsigned-varint length (as in libp2p's
// length-prefixed framing) then that many bytes of canonical CBOR. Every read has a size limit,
// checked on the length prefix before anything is buffered, and an AbortSignal deadline.
import type { Stream } from '@libp2p/interface'
import { Uint8ArrayList } from 'uint8arraylist'
import { decode, asMap, field, is, type Canonical } from '../../encoding/canonical.ts'
import { DecodeError, TooLargeError, TransientError } from '../../encoding/errors.ts'
import { decodeUvarint, encodeUvarint } from '../../encoding/varint.ts'

export class StreamTimeoutError extends TransientError {
  override readonly code: string = 'ERR_P2P_TIMEOUT'
}
export class StreamClosedError extends TransientError {
  override readonly code: string = 'ERR_P2P_CLOSED'
}

/** Errors a peer reports on purpose: `{ v:1, t:'error', code, message }`. */
export class PeerRefusedError extends TransientError {
  override readonly code: string = 'ERR_PEER_REFUSED'
  readonly peerCode: string
  constructor (peerCode: string, message: string) {
    super(`peer refused: ${message} (${peerCode})`)
    this.peerCode = peerCode
  }
}

/** The length prefix's encoding, kept here under its old name: the p2p tests import it from this module. */
export { encodeUvarint as encodeVarint }

/** A length prefix is at most 5 bytes (2^35 - 1): every limit we read with is far below that. */
const MAX_PREFIX_BYTES = 5

export class Framed {
  readonly stream: Stream
  readonly #buf = new Uint8ArrayList()
  readonly #it: AsyncIterator<Uint8Array | Uint8ArrayList>
  #ended = false

  constructor (stream: Stream) {
    this.stream = stream
    this.#it = stream[Symbol.asyncIterator]()
  }

  async write (payload: Uint8Array): Promise<void> {
    const ok = this.stream.send(new Uint8ArrayList(encodeUvarint(payload.length), payload))
    if (!ok) await this.stream.onDrain()
  }

  /** Reads one frame of at most `maxBytes`; rejects bigger frames before buffering them. */
  async read (maxBytes: number, signal?: AbortSignal): Promise<Uint8Array> {
    for (;;) {
      const frame = this.#tryFrame(maxBytes)
      if (frame !== undefined) return frame
      if (this.#ended) throw new StreamClosedError('the peer closed the stream mid-message')
      const r = await this.#next(signal)
      if (r.done === true) { this.#ended = true; continue }
      this.#buf.append(r.value)
    }
  }

  #tryFrame (maxBytes: number): Uint8Array | undefined {
    const prefix = decodeUvarint(this.#buf, { maxBytes: MAX_PREFIX_BYTES, what: 'frame length prefix' })
    if (prefix === undefined) return undefined
    const { value: len, length: head } = prefix
    if (len > maxBytes) throw new TooLargeError(`message of ${len} bytes exceeds the limit of ${maxBytes}`)
    if (this.#buf.byteLength < head + len) return undefined
    const frame = this.#buf.subarray(head, head + len)
    this.#buf.consume(head + len)
    return new Uint8Array(frame)
  }

  async #next (signal?: AbortSignal): Promise<IteratorResult<Uint8Array | Uint8ArrayList>> {
    if (signal === undefined) return await this.#it.next()
    signal.throwIfAborted()
    let onAbort: (() => void) | undefined
    const aborted = new Promise<never>((_resolve, reject) => {
      onAbort = () => { reject(new StreamTimeoutError(`no answer from the peer in time: ${String(signal.reason instanceof Error ? signal.reason.message : signal.reason)}`)) }
      signal.addEventListener('abort', onAbort, { once: true })
    })
    try {
      return await Promise.race([this.#it.next(), aborted])
    } finally {
      if (onAbort !== undefined) signal.removeEventListener('abort', onAbort)
    }
  }

  async close (): Promise<void> {
    try { await this.stream.close() } catch { this.stream.abort(new Error('close failed')) }
  }

  abort (err: Error): void {
    try { this.stream.abort(err) } catch {}
  }
}

/** Decodes one protocol message: canonical CBOR map with `v: 1` and a string type `t`. */
export function decodeMessage (bytes: Uint8Array, maxBytes: number, what: string): { t: string, m: Record<string, Canonical> } {
  const m = asMap(decode(bytes, { maxBytes, maxDepth: 6, maxItems: 1024 }), what)
  const v = field(m, 'v', what, is.uint, 'unsigned integer')
  if (v !== 1) throw new DecodeError(`${what}: unsupported version ${v}`)
  const t = field(m, 't', what, is.string, 'text')
  if (t === 'error') {
    const code = field(m, 'code', what, is.string, 'text')
    const message = field(m, 'message', what, is.string, 'text')
    throw new PeerRefusedError(code.slice(0, 64), message.slice(0, 300))
  }
  return { t, m }
}

export function expectType (msg: { t: string }, t: string, what: string): void {
  if (msg.t !== t) throw new DecodeError(`${what}: expected a ${t} message, got ${JSON.stringify(msg.t.slice(0, 32))}`)
}
