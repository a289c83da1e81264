// Canonical encoding: the deterministic CBOR subset of RFC 8949 §4.2.1 ("core deterministic
// encoding"). One value has exactly one encoding, so hashes and signatures over encoded values
// are stable across machines and versions. The decoder is strict: it rejects anything an honest
// encoder would not produce (non-shortest lengths, unsorted or duplicate map keys, indefinite
// lengths, floats, tags, trailing bytes), enforces size and depth limits, and never trusts a
// length it has not checked against the remaining input.
import { DecodeError, InvalidInputError, TooLargeError } from './errors.ts'
import { compare, GrowableBytes } from './bytes.ts'

export type Canonical =
  | null
  | boolean
  | number // integers only (safe range)
  | bigint // integers beyond the safe range, up to 64 bits
  | string
  | Uint8Array
  | readonly Canonical[]
  | { readonly [key: string]: Canonical | undefined } // undefined members are omitted

export interface DecodeLimits {
  /** Largest input accepted, in bytes (default 1 MiB). */
  maxBytes?: number
  /** Deepest nesting of arrays and maps (default 32). */
  maxDepth?: number
  /** Most items in one array or map (default 65536). */
  maxItems?: number
  /**
   * Byte strings as views into the input instead of copies (default false). Only for callers
   * that never mutate the input afterwards: saves an allocation per byte string.
   */
  shareBytes?: boolean
}

const te = new TextEncoder()
const td = new TextDecoder('utf-8', { fatal: true })

class Writer extends GrowableBytes {
  byte(b: number): void {
    this.ensure(1)
    this.buf[this.len++] = b
  }
  head(major: number, n: number | bigint): void {
    const m = major << 5
    if (typeof n === 'bigint') {
      if (n <= 0xffffffffn) {
        this.head(major, Number(n))
        return
      }
      this.ensure(9)
      this.buf[this.len++] = m | 27
      new DataView(this.buf.buffer).setBigUint64(this.len, n)
      this.len += 8
      return
    }
    if (n < 24) this.byte(m | n)
    else if (n < 0x100) {
      this.ensure(2)
      this.buf[this.len++] = m | 24
      this.buf[this.len++] = n
    } else if (n < 0x10000) {
      this.ensure(3)
      const b = this.buf
      b[this.len++] = m | 25
      b[this.len++] = n >>> 8
      b[this.len++] = n & 0xff
    } else if (n < 0x100000000) {
      this.ensure(5)
      const b = this.buf
      b[this.len++] = m | 26
      b[this.len++] = n >>> 24
      b[this.len++] = (n >>> 16) & 0xff
      b[this.len++] = (n >>> 8) & 0xff
      b[this.len++] = n & 0xff
    } else this.head(major, BigInt(n))
  }
}

// Map keys are few and repeat (field names): their encodings are cached, which halves the cost
// of encoding small records. Bounded so that data used as keys cannot grow it without limit.
const keyCache = new Map<string, Uint8Array>()
function encodedKey(k: string): Uint8Array {
  let e = keyCache.get(k)
  if (e === undefined) {
    const b = te.encode(k)
    const kw = new Writer()
    kw.head(3, b.length)
    kw.put(b)
    e = kw.finish()
    if (keyCache.size >= 4096) keyCache.clear()
    keyCache.set(k, e)
  }
  return e
}

// The canonical order of a set of map keys, by the key list as Object.keys gives it (records of
// one shape share it). §4.2.1: keys sorted by the bytewise lexicographic order of their encodings.
interface KeyEnc {
  readonly name: string
  readonly key: Uint8Array
}
const orderCache = new Map<string, readonly KeyEnc[]>()
function keyOrder(names: string[]): readonly KeyEnc[] {
  const id = names.join('\u0000')
  let o = orderCache.get(id)
  // Only key lists without NUL in a name are cached, so a cached id has exactly one NUL per
  // separator: a list whose names contain NUL (same id, fewer names) never takes its entry.
  if (o !== undefined && o.length === names.length) return o
  o = names.map(name => ({ name, key: encodedKey(name) })).sort((a, b) => compare(a.key, b.key))
  if (id.length > 1024 || names.some(n => n.includes('\u0000'))) return o // not kept: bounds the memory; see above
  if (orderCache.size >= 4096) orderCache.clear()
  orderCache.set(id, o)
  return o
}

function write(w: Writer, v: Canonical | undefined, depth: number): void {
  if (depth > 64) throw new InvalidInputError('canonical encode: nesting too deep')
  if (v === null) {
    w.byte(0xf6)
    return
  }
  if (v === true) {
    w.byte(0xf5)
    return
  }
  if (v === false) {
    w.byte(0xf4)
    return
  }
  if (typeof v === 'number') {
    if (!Number.isSafeInteger(v))
      throw new InvalidInputError(`canonical encode: ${v} is not a safe integer (floats are not allowed)`)
    if (v >= 0) w.head(0, v)
    else w.head(1, -1 - v)
    return
  }
  if (typeof v === 'bigint') {
    if (v >= 0n) {
      if (v > 0xffffffffffffffffn) throw new InvalidInputError('canonical encode: integer exceeds 64 bits')
      if (v <= BigInt(Number.MAX_SAFE_INTEGER)) w.head(0, Number(v))
      else w.head(0, v)
    } else {
      const n = -1n - v
      if (n > 0xffffffffffffffffn) throw new InvalidInputError('canonical encode: integer exceeds 64 bits')
      if (n <= BigInt(Number.MAX_SAFE_INTEGER)) w.head(1, Number(n))
      else w.head(1, n)
    }
    return
  }
  if (typeof v === 'string') {
    // short ASCII strings (keys, names, digests) are written directly; anything else via TextEncoder
    const n = v.length
    if (n < 256) {
      w.head(3, n)
      w.ensure(n)
      const b = w.buf
      const start = w.len
      let i = 0
      for (; i < n; i++) {
        const c = v.charCodeAt(i)
        if (c > 0x7f) break
        b[start + i] = c
      }
      if (i === n) {
        w.len += n
        return
      }
      w.len = start - (n < 24 ? 1 : 2) // undo the head: the UTF-8 length differs
    }
    const b = te.encode(v)
    w.head(3, b.length)
    w.put(b)
    return
  }
  if (v instanceof Uint8Array) {
    w.head(2, v.length)
    w.put(v)
    return
  }
  if (Array.isArray(v)) {
    w.head(4, v.length)
    for (const x of v) write(w, x, depth + 1)
    return
  }
  if (typeof v === 'object' && v !== undefined) {
    const proto = Object.getPrototypeOf(v)
    if (proto !== Object.prototype && proto !== null)
      throw new InvalidInputError('canonical encode: only plain objects can be encoded as maps')
    const m = v as { readonly [key: string]: Canonical | undefined }
    const order = keyOrder(Object.keys(m))
    let count = 0
    for (let i = 0; i < order.length; i++) if (m[order[i].name] !== undefined) count++
    w.head(5, count)
    for (let i = 0; i < order.length; i++) {
      const x = m[order[i].name]
      if (x === undefined) continue
      w.put(order[i].key)
      write(w, x, depth + 1)
    }
    return
  }
  throw new InvalidInputError(`canonical encode: unsupported value of type ${typeof v}`)
}

// One scratch writer for all encodes (encode is synchronous and not re-entered): saves an
// off-heap buffer allocation per call; the result is always a fresh exact-size copy.
const scratch = new Writer(64 * 1024)

export function encode(v: Canonical): Uint8Array {
  const w = scratch
  w.len = 0
  try {
    write(w, v, 0)
    return w.finish()
  } finally {
    w.len = 0
    if (w.buf.length > 1 << 20) w.buf = new Uint8Array(64 * 1024)
  }
}

/** Bytewise comparison of buf[a0, a1) and buf[b0, b1) (as compare() on the two subarrays). */
function compareSpans(buf: Uint8Array, a0: number, a1: number, b0: number, b1: number): number {
  const la = a1 - a0
  const lb = b1 - b0
  const n = la < lb ? la : lb
  for (let i = 0; i < n; i++) {
    const d = buf[a0 + i] - buf[b0 + i]
    if (d !== 0) return d
  }
  return la - lb
}

class Reader {
  pos = 0
  readonly view: DataView
  readonly buf: Uint8Array
  /** The same bytes as a Buffer (a view, no copy) for Buffer#toString('latin1'); made on first use. */
  #text: Buffer | undefined
  readonly limits: Required<DecodeLimits>
  constructor(buf: Uint8Array, limits: Required<DecodeLimits>) {
    this.buf = buf
    this.limits = limits
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength)
  }

  /** ASCII text at buf[start, end) (the caller checked every byte is < 0x80, so latin1 = UTF-8). */
  ascii(start: number, end: number): string {
    this.#text ??= Buffer.isBuffer(this.buf)
      ? this.buf
      : Buffer.from(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength)
    return this.#text.toString('latin1', start, end)
  }

  fail(msg: string): never {
    throw new DecodeError(`canonical decode: ${msg} at byte ${this.pos}`)
  }
  need(n: number): void {
    if (n > this.buf.length - this.pos)
      this.fail(`truncated input (need ${n} more bytes, have ${this.buf.length - this.pos})`)
  }
  u8(): number {
    this.need(1)
    return this.buf[this.pos++]
  }

  /** Reads an argument; enforces shortest form. Returns number when safe, else bigint. */
  arg(info: number): number | bigint {
    if (info < 24) return info
    if (info === 24) {
      const n = this.u8()
      if (n < 24) this.fail('non-shortest integer')
      return n
    }
    if (info === 25) {
      this.need(2)
      const n = this.view.getUint16(this.pos)
      this.pos += 2
      if (n < 0x100) this.fail('non-shortest integer')
      return n
    }
    if (info === 26) {
      this.need(4)
      const n = this.view.getUint32(this.pos)
      this.pos += 4
      if (n < 0x10000) this.fail('non-shortest integer')
      return n
    }
    if (info === 27) {
      this.need(8)
      const n = this.view.getBigUint64(this.pos)
      this.pos += 8
      if (n < 0x100000000n) this.fail('non-shortest integer')
      return n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : n
    }
    return this.fail(info === 31 ? 'indefinite lengths are not allowed' : `reserved additional info ${info}`)
  }

  len(info: number): number {
    const n = this.arg(info)
    if (typeof n === 'bigint' || n > this.buf.length - this.pos) this.fail('length exceeds the input')
    return n
  }

  value(depth: number): Canonical {
    if (depth > this.limits.maxDepth) this.fail('nesting too deep')
    const ib = this.u8()
    const major = ib >> 5
    const info = ib & 0x1f
    switch (major) {
      case 0:
        return this.arg(info)
      case 1: {
        const n = this.arg(info)
        return typeof n === 'number' ? -1 - n : -1n - n
      }
      case 2: {
        const n = this.len(info)
        const b = this.limits.shareBytes
          ? this.buf.subarray(this.pos, this.pos + n)
          : this.buf.slice(this.pos, this.pos + n)
        this.pos += n
        return b
      }
      case 3: {
        const n = this.len(info)
        let s: string | undefined
        if (n <= 128) {
          // short ASCII text (field names, ids) without the TextDecoder round trip
          const b = this.buf
          const p = this.pos
          let ascii = true
          for (let i = 0; i < n; i++)
            if (b[p + i] > 0x7f) {
              ascii = false
              break
            }
          if (ascii) s = this.ascii(p, p + n)
        }
        if (s === undefined) {
          try {
            s = td.decode(this.buf.subarray(this.pos, this.pos + n))
          } catch {
            return this.fail('invalid UTF-8 in text string')
          }
        }
        this.pos += n
        return s
      }
      case 4: {
        const n = this.len(info)
        if (n > this.limits.maxItems) this.fail(`array of ${n} items exceeds the limit of ${this.limits.maxItems}`)
        const out: Canonical[] = []
        for (let i = 0; i < n; i++) out.push(this.value(depth + 1))
        return out
      }
      case 5: {
        const n = this.len(info)
        if (n > this.limits.maxItems) this.fail(`map of ${n} entries exceeds the limit of ${this.limits.maxItems}`)
        // Built as a plain object (V8 fast properties; Object.create(null) objects are dictionaries
        // of ~1 KB) and given a null prototype at the end: the same own properties either way
        const out: Record<string, Canonical> = {}
        let prevStart = -1
        let prevEnd = -1
        for (let i = 0; i < n; i++) {
          const start = this.pos
          this.need(1)
          if (this.buf[this.pos] >> 5 !== 3) this.fail('map keys must be text strings')
          const k = this.value(depth + 1) as string
          if (prevStart >= 0 && compareSpans(this.buf, prevStart, prevEnd, start, this.pos) >= 0)
            this.fail('map keys are not in canonical order or are duplicated')
          prevStart = start
          prevEnd = this.pos
          const x = this.value(depth + 1)
          if (k === '__proto__')
            Object.defineProperty(out, k, { value: x, writable: true, enumerable: true, configurable: true })
          else out[k] = x
        }
        return Object.setPrototypeOf(out, null) as Record<string, Canonical>
      }
      case 7:
        if (info === 20) return false
        if (info === 21) return true
        if (info === 22) return null
        return this.fail('floats, undefined and simple values are not allowed')
      default:
        return this.fail('tags are not allowed')
    }
  }
}

export function decode(bytes: Uint8Array, limits: DecodeLimits = {}): Canonical {
  const l: Required<DecodeLimits> = {
    maxBytes: limits.maxBytes ?? 1 << 20,
    maxDepth: limits.maxDepth ?? 32,
    maxItems: limits.maxItems ?? 65536,
    shareBytes: limits.shareBytes ?? false
  }
  if (bytes.length > l.maxBytes)
    throw new TooLargeError(`canonical decode: input of ${bytes.length} bytes exceeds the limit of ${l.maxBytes}`)
  if (bytes.length === 0) throw new DecodeError('canonical decode: empty input')
  const r = new Reader(bytes, l)
  const v = r.value(0)
  if (r.pos !== bytes.length) r.fail(`${bytes.length - r.pos} trailing bytes`)
  return v
}

// Small typed accessors for strict decoding of records.
export function asMap(v: Canonical, what: string): Record<string, Canonical> {
  if (v === null || typeof v !== 'object' || Array.isArray(v) || v instanceof Uint8Array)
    throw new DecodeError(`${what}: expected a map`)
  return v as Record<string, Canonical>
}

export function field<T extends Canonical>(
  m: Record<string, Canonical>,
  key: string,
  what: string,
  check: (x: Canonical) => x is T,
  type: string
): T {
  const x = Object.hasOwn(m, key) ? m[key] : undefined
  if (x === undefined || !check(x)) throw new DecodeError(`${what}.${key}: expected ${type}`)
  return x
}

export const is = {
  bytes: (x: Canonical): x is Uint8Array => x instanceof Uint8Array,
  string: (x: Canonical): x is string => typeof x === 'string',
  uint: (x: Canonical): x is number => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0,
  bool: (x: Canonical): x is boolean => typeof x === 'boolean',
  array: (x: Canonical): x is readonly Canonical[] => Array.isArray(x),
  map: (x: Canonical): x is Record<string, Canonical> =>
    x !== null && typeof x === 'object' && !Array.isArray(x) && !(x instanceof Uint8Array)
}

/** Rejects maps with keys outside `allowed` (strict decoding of versioned records). */
export function onlyKeys(m: Record<string, Canonical>, allowed: readonly string[], what: string): void {
  for (const k of Object.keys(m))
    if (!allowed.includes(k)) throw new DecodeError(`${what}: unknown field ${JSON.stringify(k)}`)
}
