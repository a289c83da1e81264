// Byte helpers shared by every module. Kept tiny: node:crypto and our error classes only.
import { createHash, timingSafeEqual } from 'node:crypto'
import { DecodeError, InvalidInputError } from './errors.ts'

export function toHex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex')
}

/** Strict hex decoding: even length, [0-9a-f] only (an optional 0x prefix is accepted). */
export function fromHex(s: string, what = 'hex string'): Uint8Array {
  const h = s.startsWith('0x') || s.startsWith('0X') ? s.slice(2) : s
  if (h.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(h)) {
    throw new DecodeError(`${what} is not valid hex (even number of 0-9a-f characters expected)`)
  }
  return new Uint8Array(Buffer.from(h, 'hex'))
}

export function toBase64(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64')
}

export function fromBase64(s: string, what = 'base64 string'): Uint8Array {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(s) || s.length % 4 !== 0) {
    throw new DecodeError(`${what} is not valid base64`)
  }
  return new Uint8Array(Buffer.from(s, 'base64'))
}

/**
 * A growable byte buffer for writers (canonical CBOR, TPM structures): doubles when full;
 * finish() returns an exact-size copy of what was written.
 */
export class GrowableBytes {
  buf: Uint8Array
  len = 0
  constructor(initialSize = 256) {
    this.buf = new Uint8Array(initialSize)
  }

  ensure(n: number): void {
    if (this.len + n <= this.buf.length) return
    let cap = this.buf.length * 2
    while (cap < this.len + n) cap *= 2
    const b = new Uint8Array(cap)
    b.set(this.buf.subarray(0, this.len))
    this.buf = b
  }

  put(b: Uint8Array): void {
    this.ensure(b.length)
    this.buf.set(b, this.len)
    this.len += b.length
  }
  finish(): Uint8Array {
    return this.buf.slice(0, this.len)
  }
}

/**
 * A big-endian unsigned integer as exactly `size` bytes: leading zero bytes added, or extra ones
 * dropped. A TPM2B_ECC_PARAMETER (and OpenSSL's minimal encoding) may come without its leading
 * zeros, while a curve point or a JWK needs the full width; a value that does not fit is an
 * InvalidInputError naming `what`.
 */
export function leftPad(b: Uint8Array, size: number, what: string): Uint8Array {
  if (b.length === size) return b
  let start = 0
  while (start < b.length - size && b[start] === 0) start++
  const t = b.subarray(start)
  if (t.length > size) throw new InvalidInputError(`${what}: ${b.length} bytes, larger than the ${size}-byte field`)
  const out = new Uint8Array(size)
  out.set(t, size - t.length)
  return out
}

export function concat(parts: readonly Uint8Array[]): Uint8Array {
  let n = 0
  for (const p of parts) n += p.byteLength
  const out = new Uint8Array(n)
  let o = 0
  for (const p of parts) {
    out.set(p, o)
    o += p.byteLength
  }
  return out
}

export function equal(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false
  return true
}

/** Constant-time comparison for secrets and MACs. */
export function equalConstantTime(a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === b.byteLength && timingSafeEqual(a, b)
}

export function compare(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.byteLength, b.byteLength)
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i] - b[i]
  return a.byteLength - b.byteLength
}

export type DigestAlg = 'sha1' | 'sha256' | 'sha384' | 'sha512'

export function digest(alg: DigestAlg, ...parts: Uint8Array[]): Uint8Array {
  const h = createHash(alg)
  for (const p of parts) h.update(p)
  return new Uint8Array(h.digest())
}

export function sha256(...parts: Uint8Array[]): Uint8Array {
  return digest('sha256', ...parts)
}

export const utf8 = {
  encode: (s: string): Uint8Array => new TextEncoder().encode(s),
  decode: (b: Uint8Array): string => new TextDecoder('utf-8', { fatal: true }).decode(b)
}
