// A small DER (ITU-T X.690 §10) writer and a strict reader: enough to build a self-signed X.509 v3
// certificate (RFC 5280 §4.1) and to read one extension back out of a peer's certificate. Node
// parses certificates (X509Certificate) but builds none, and exposes no extension by OID.
//
// The reader accepts DER only: single-byte tags (tag numbers < 31, which is all X.509 uses),
// definite lengths in their shortest form, no length beyond the buffer. Anything else is a
// DecodeError naming what and where — never an exception of another kind, never a read past the
// end (the parser is fuzzed: test/agent/tls.test.ts).
import { DecodeError, InvalidInputError } from './errors.ts'

export const TAG = {
  BOOLEAN: 0x01,
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  NULL: 0x05,
  OID: 0x06,
  UTF8_STRING: 0x0c,
  UTC_TIME: 0x17,
  GENERALIZED_TIME: 0x18,
  SEQUENCE: 0x30,
  SET: 0x31
} as const

// ---- writer ----

function lengthBytes(n: number): number[] {
  if (n < 0x80) return [n]
  const out: number[] = []
  for (let x = n; x > 0; x = Math.floor(x / 256)) out.unshift(x & 0xff)
  return [0x80 | out.length, ...out]
}

/** One TLV: `tag` (one byte) and the concatenated contents. */
export function tlv(tag: number, ...contents: Uint8Array[]): Uint8Array {
  let n = 0
  for (const c of contents) n += c.length
  const len = lengthBytes(n)
  const out = new Uint8Array(1 + len.length + n)
  out[0] = tag
  out.set(len, 1)
  let o = 1 + len.length
  for (const c of contents) {
    out.set(c, o)
    o += c.length
  }
  return out
}

export const sequence = (...items: Uint8Array[]): Uint8Array => tlv(TAG.SEQUENCE, ...items)
export const set = (...items: Uint8Array[]): Uint8Array => tlv(TAG.SET, ...items)
export const octetString = (b: Uint8Array): Uint8Array => tlv(TAG.OCTET_STRING, b)
export const utf8String = (s: string): Uint8Array => tlv(TAG.UTF8_STRING, new TextEncoder().encode(s))
export const boolean = (v: boolean): Uint8Array => tlv(TAG.BOOLEAN, Uint8Array.of(v ? 0xff : 0))
/** A BIT STRING of whole bytes (no unused bits). */
export const bitString = (b: Uint8Array): Uint8Array => tlv(TAG.BIT_STRING, Uint8Array.of(0), b)
/** [n] EXPLICIT: a constructed context-specific tag around one encoding. */
export const explicit = (n: number, inner: Uint8Array): Uint8Array => tlv(0xa0 | n, inner)

/** A non-negative INTEGER in its minimal two's-complement form. */
export function integer(v: bigint | number | Uint8Array): Uint8Array {
  let bytes: number[]
  if (v instanceof Uint8Array) {
    let i = 0
    while (i < v.length - 1 && v[i] === 0) i++
    bytes = [...v.subarray(i)]
    if (bytes.length === 0) bytes = [0]
  } else {
    let x = BigInt(v)
    if (x < 0n) throw new InvalidInputError('der: negative integers are not written here')
    bytes = []
    do {
      bytes.unshift(Number(x & 0xffn))
      x >>= 8n
    } while (x > 0n)
  }
  if (bytes[0] >= 0x80) bytes.unshift(0)
  return tlv(TAG.INTEGER, Uint8Array.from(bytes))
}

/** OBJECT IDENTIFIER from dotted text (arcs may exceed 2^53: 2.25.<UUID> arcs are 128-bit). */
export function oid(dotted: string): Uint8Array {
  const arcs = dotted.split('.').map(a => {
    if (!/^(0|[1-9]\d*)$/.test(a)) throw new InvalidInputError(`der: ${JSON.stringify(dotted)} is not a dotted OID`)
    return BigInt(a)
  })
  if (arcs.length < 2 || arcs[0] > 2n || (arcs[0] < 2n && arcs[1] > 39n))
    throw new InvalidInputError(`der: ${JSON.stringify(dotted)} is not a valid OID`)
  const out: number[] = []
  for (const v of [arcs[0] * 40n + arcs[1], ...arcs.slice(2)]) {
    const b = [Number(v & 0x7fn)]
    for (let x = v >> 7n; x > 0n; x >>= 7n) b.unshift(Number(x & 0x7fn) | 0x80)
    out.push(...b)
  }
  return tlv(TAG.OID, Uint8Array.from(out))
}

/** RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050; seconds, Z. */
export function time(d: Date): Uint8Array {
  const iso = d.toISOString() // YYYY-MM-DDTHH:MM:SS.sssZ
  const digits = iso.slice(0, 19).replace(/[-:T]/g, '')
  const year = d.getUTCFullYear()
  if (year < 1950 || year > 9999) throw new InvalidInputError(`der: year ${year} cannot be encoded in a certificate`)
  return year < 2050
    ? tlv(TAG.UTC_TIME, new TextEncoder().encode(`${digits.slice(2)}Z`))
    : tlv(TAG.GENERALIZED_TIME, new TextEncoder().encode(`${digits}Z`))
}

// ---- reader ----

/** One element read from DER: its tag, its contents, and where the next element starts. */
export interface Tlv {
  readonly tag: number
  readonly contents: Uint8Array
  /** Offset of the element's tag byte in the buffer it was read from (its encoding is buf[start, end)). */
  readonly start: number
  /** Offset just past this element in the buffer it was read from. */
  readonly end: number
}

/** Reads the element at `offset` of `buf`; throws DecodeError (naming `what`) on anything but DER. */
export function readTlv(buf: Uint8Array, offset: number, what: string): Tlv {
  if (offset >= buf.length) throw new DecodeError(`${what}: truncated (no element at byte ${offset})`)
  const tag = buf[offset]
  if ((tag & 0x1f) === 0x1f) throw new DecodeError(`${what}: multi-byte tag at byte ${offset} is not used in X.509`)
  if (offset + 1 >= buf.length) throw new DecodeError(`${what}: truncated length at byte ${offset + 1}`)
  const first = buf[offset + 1]
  let len: number
  let o = offset + 2
  if (first < 0x80) len = first
  else {
    const n = first & 0x7f
    if (n === 0) throw new DecodeError(`${what}: indefinite length at byte ${offset + 1} (BER, not DER)`)
    if (n > 4) throw new DecodeError(`${what}: length of ${n} bytes at byte ${offset + 1}`)
    if (o + n > buf.length) throw new DecodeError(`${what}: truncated length at byte ${offset + 1}`)
    len = 0
    for (let i = 0; i < n; i++) len = len * 256 + buf[o + i]
    if (buf[o] === 0 || len < 0x80)
      throw new DecodeError(`${what}: length at byte ${offset + 1} is not in its shortest form`)
    o += n
  }
  if (o + len > buf.length)
    throw new DecodeError(`${what}: element at byte ${offset} claims ${len} bytes, ${buf.length - o} remain`)
  return { tag, contents: buf.subarray(o, o + len), start: offset, end: o + len }
}

/** Reads exactly one element filling `buf`, with tag `tag`. */
export function readOne(buf: Uint8Array, tag: number, what: string): Tlv {
  const t = readTlv(buf, 0, what)
  if (t.tag !== tag) throw new DecodeError(`${what}: expected tag 0x${hex(tag)}, found 0x${hex(t.tag)}`)
  if (t.end !== buf.length) throw new DecodeError(`${what}: ${buf.length - t.end} bytes after the element`)
  return t
}

/** The elements inside a constructed element's contents (a SEQUENCE's or SET's members). */
export function children(contents: Uint8Array, what: string, max = 64): Tlv[] {
  const out: Tlv[] = []
  for (let o = 0; o < contents.length; ) {
    if (out.length >= max) throw new DecodeError(`${what}: more than ${max} elements`)
    const t = readTlv(contents, o, what)
    out.push(t)
    o = t.end
  }
  return out
}

/** Dotted text of an OBJECT IDENTIFIER's contents (at most 64 bytes of them). */
export function oidText(contents: Uint8Array, what: string): string {
  if (contents.length === 0 || contents.length > 64) throw new DecodeError(`${what}: OID of ${contents.length} bytes`)
  const arcs: bigint[] = []
  let v = 0n
  let started = false
  for (let i = 0; i < contents.length; i++) {
    const b = contents[i]
    if (!started && b === 0x80) throw new DecodeError(`${what}: OID arc with a leading zero byte`)
    started = true
    v = (v << 7n) | BigInt(b & 0x7f)
    if ((b & 0x80) === 0) {
      arcs.push(v)
      v = 0n
      started = false
    }
  }
  if (started) throw new DecodeError(`${what}: OID ends inside an arc`)
  const first = arcs[0]
  const head = first < 40n ? [0n, first] : first < 80n ? [1n, first - 40n] : [2n, first - 80n]
  return [...head, ...arcs.slice(1)].map(String).join('.')
}

/** UTF-8 text of a UTF8String's contents (fatal on invalid UTF-8). */
export function utf8Text(contents: Uint8Array, what: string): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(contents)
  } catch {
    throw new DecodeError(`${what}: not valid UTF-8`)
  }
}

/** A small non-negative INTEGER's value (≤ 2^48). */
export function smallInteger(contents: Uint8Array, what: string): number {
  if (contents.length === 0 || contents.length > 6)
    throw new DecodeError(`${what}: INTEGER of ${contents.length} bytes`)
  if (contents[0] & 0x80) throw new DecodeError(`${what}: negative INTEGER`)
  if (contents.length > 1 && contents[0] === 0 && (contents[1] & 0x80) === 0)
    throw new DecodeError(`${what}: INTEGER not in its shortest form`)
  let n = 0
  for (const b of contents) n = n * 256 + b
  return n
}

function hex(n: number): string {
  return n.toString(16).padStart(2, '0')
}
