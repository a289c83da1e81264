// Length-prefixed messages over a libp2p stream: frames (encoding/frames.ts: unsigned-varint
// length, then the bytes) of canonical CBOR. Every read has a size limit, checked on the length
// prefix before anything is buffered, and an AbortSignal deadline.
import type { Stream } from '@libp2p/interface'
import { decode, asMap, field, is, type Canonical } from '../../encoding/canonical.ts'
import { DecodeError, TransientError } from '../../encoding/errors.ts'
import { FrameReader, StreamClosedError, frame } from '../../encoding/frames.ts'
import { encodeUvarint } from '../../encoding/varint.ts'

export { StreamClosedError, StreamTimeoutError } from '../../encoding/frames.ts'

/** Errors a peer reports on purpose: `{ v:1, t:'error', code, message }`. */
export class PeerRefusedError extends TransientError {
  override readonly code: string = 'ERR_PEER_REFUSED'
  readonly peerCode: string
  constructor(peerCode: string, message: string) {
    super(`peer refused: ${message} (${peerCode})`)
    this.peerCode = peerCode
  }
}

/** The length prefix's encoding, kept here under its old name: the p2p tests import it from this module. */
export { encodeUvarint as encodeVarint }

export class Framed {
  readonly stream: Stream
  readonly #reader: FrameReader

  constructor(stream: Stream) {
    this.stream = stream
    this.#reader = new FrameReader(stream)
  }

  async write(payload: Uint8Array): Promise<void> {
    // one contiguous buffer, not [length prefix, payload]: the muxer frames each chunk it is given
    // into its own encrypted record over TLS, so two chunks cost two records and two socket writes
    const ok = this.stream.send(frame(payload).subarray())
    if (!ok) await this.stream.onDrain()
  }

  /** Reads one frame of at most `maxBytes`; rejects bigger frames before buffering them. */
  async read(maxBytes: number, signal?: AbortSignal): Promise<Uint8Array> {
    const f = await this.#reader.next(maxBytes, signal)
    if (f === undefined) throw new StreamClosedError('the peer closed the stream before sending a message')
    return f
  }

  async close(): Promise<void> {
    try {
      await this.stream.close()
    } catch {
      this.stream.abort(new Error('close failed'))
    }
  }

  abort(err: Error): void {
    try {
      this.stream.abort(err)
    } catch {}
  }
}

/** Decodes one protocol message: canonical CBOR map with `v: 1` and a string type `t`. */
export function decodeMessage(
  bytes: Uint8Array,
  maxBytes: number,
  what: string
): { t: string; m: Record<string, Canonical> } {
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

export function expectType(msg: { t: string }, t: string, what: string): void {
  if (msg.t !== t) throw new DecodeError(`${what}: expected a ${t} message, got ${JSON.stringify(msg.t.slice(0, 32))}`)
}
