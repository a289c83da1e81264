// Unsigned varints (multiformats unsigned-varint, i.e. unsigned LEB128, as in libp2p's
// length-prefixed framing): 7 bits a byte, least significant group first, the high bit set on
// every byte but the last. Values are JS numbers, so at most Number.MAX_SAFE_INTEGER (8 bytes).
import { DecodeError, InvalidInputError } from './errors.ts'

/** Bytes a varint of Number.MAX_SAFE_INTEGER (2^53 - 1) takes; the most decodeUvarint reads. */
export const MAX_UVARINT_BYTES = 8

/** The minimal encoding of `n`, a non-negative safe integer; anything else is an InvalidInputError. */
export function encodeUvarint(n: number): Uint8Array {
  if (!Number.isSafeInteger(n) || n < 0)
    throw new InvalidInputError(`unsigned varint: ${String(n)} is not a non-negative safe integer`)
  const out: number[] = []
  while (n >= 0x80) {
    out.push((n % 0x80) | 0x80)
    n = Math.floor(n / 0x80)
  }
  out.push(n)
  return Uint8Array.from(out)
}

/** Indexed bytes: a Uint8Array, or anything with `byteLength` and `get(i)` such as a Uint8ArrayList. */
export type UvarintSource = Uint8Array | { readonly byteLength: number; get(index: number): number }

/**
 * Reads one varint at the start of `bytes`: its value and how many bytes it took, or undefined
 * when `bytes` ends inside it (read again once more bytes have arrived). Strict: a varint longer
 * than `maxBytes` (1..8, default 8) is a DecodeError as soon as its first `maxBytes` bytes are
 * seen, so is a non-minimal one (a last byte of zero after the first) and one above
 * Number.MAX_SAFE_INTEGER. `what` names the value in error messages.
 */
export function decodeUvarint(
  bytes: UvarintSource,
  opts: { maxBytes?: number; what?: string } = {}
): { value: number; length: number } | undefined {
  const maxBytes = opts.maxBytes ?? MAX_UVARINT_BYTES
  const what = opts.what ?? 'unsigned varint'
  if (!Number.isInteger(maxBytes) || maxBytes < 1 || maxBytes > MAX_UVARINT_BYTES)
    throw new InvalidInputError(`unsigned varint: maxBytes must be 1..${MAX_UVARINT_BYTES}, not ${String(maxBytes)}`)
  const at = bytes instanceof Uint8Array ? (i: number) => bytes[i] : (i: number) => bytes.get(i)
  let value = 0
  let mul = 1
  for (let i = 0; ; i++) {
    if (i >= bytes.byteLength) return undefined
    if (i >= maxBytes) throw new DecodeError(`${what} is longer than ${maxBytes} bytes`)
    const b = at(i)
    value += (b & 0x7f) * mul
    mul *= 0x80
    if ((b & 0x80) !== 0) continue
    if (i > 0 && b === 0) throw new DecodeError(`${what} is not minimal (its last byte is zero)`)
    // past 2^53 the sum may round, but never down to 2^53 - 1 or below
    if (value > Number.MAX_SAFE_INTEGER) throw new DecodeError(`${what} exceeds ${Number.MAX_SAFE_INTEGER}`)
    return { value, length: i + 1 }
  }
}
