// ABCI socket framing (CometBFT v0.38, abci/types/messages.go WriteMessage/ReadMessage): every
// Request and Response is a protobuf message preceded by its length as an unsigned varint
// (uint64 LEB128; v0.34 used a signed zig-zag varint, changed in tendermint#9182). The decoder
// is strict (encoding/varint.ts: minimal, at most 8 bytes) and bounded: a frame announcing more
// than `maxFrameBytes` is refused before any of it is buffered.
import { Buffer } from 'node:buffer'
import { TooLargeError } from '../../encoding/errors.ts'
import { decodeUvarint, encodeUvarint } from '../../encoding/varint.ts'

/** Largest ABCI message accepted by default: a FinalizeBlock carries a whole block (genesis caps blocks at 8 MiB). */
export const DEFAULT_MAX_FRAME_BYTES = 32 * 1024 * 1024

/** `message` with its uvarint length in front. */
export function encodeFrame(message: Uint8Array): Uint8Array {
  const len = encodeUvarint(message.byteLength)
  const out = new Uint8Array(len.byteLength + message.byteLength)
  out.set(len, 0)
  out.set(message, len.byteLength)
  return out
}

/**
 * Splits a byte stream into frames. `push` returns the complete frames so far (each a copy the
 * caller may keep); bytes of an unfinished frame stay buffered, never more than the frame's
 * announced length plus its prefix. Throws DecodeError (bad varint) or TooLargeError (frame over
 * the limit); the stream is then unusable and the connection must be closed.
 */
export class FrameDecoder {
  readonly #max: number
  #buf: Buffer = Buffer.alloc(0)

  constructor(maxFrameBytes = DEFAULT_MAX_FRAME_BYTES) {
    this.#max = maxFrameBytes
  }

  /** Bytes waiting for the rest of their frame. */
  get buffered(): number {
    return this.#buf.byteLength
  }

  push(chunk: Uint8Array): Uint8Array[] {
    this.#buf = this.#buf.byteLength === 0 ? Buffer.from(chunk) : Buffer.concat([this.#buf, chunk])
    const out: Uint8Array[] = []
    let at = 0
    for (;;) {
      const rest = this.#buf.subarray(at)
      const h = decodeUvarint(rest, { what: 'ABCI frame length' })
      if (h === undefined) break
      if (h.value > this.#max)
        throw new TooLargeError(`ABCI frame of ${h.value} bytes exceeds the limit of ${this.#max}`)
      if (rest.byteLength < h.length + h.value) break
      out.push(new Uint8Array(rest.subarray(h.length, h.length + h.value)))
      at += h.length + h.value
    }
    this.#buf = at === 0 ? this.#buf : Buffer.from(this.#buf.subarray(at))
    return out
  }
}
