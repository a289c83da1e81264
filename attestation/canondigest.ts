// sha256 of the canonical (RFC 8949 §4.2.1 deterministic CBOR) encoding of a JSON-like value,
// for the appraisal's hot path. It produces exactly the bytes encoding/canonical.ts `encode`
// produces (the tests compare them) but caches map-key encodings and key orders and writes into
// one reused buffer, which makes the digest of an appraisal result several times cheaper.
// Values outside the JSON-like subset (bigint) fall back to the shared encoder.
import { createHash, hash } from 'node:crypto'
import { encode, type Canonical } from '../encoding/canonical.ts'

let buf = Buffer.allocUnsafe(4096)
let len = 0

function ensure(n: number): void {
  if (len + n <= buf.length) return
  let cap = buf.length * 2
  while (cap < len + n) cap *= 2
  const b = Buffer.allocUnsafe(cap)
  buf.copy(b, 0, 0, len)
  buf = b
}

function head(major: number, n: number): void {
  const m = major << 5
  ensure(9)
  if (n < 24) buf[len++] = m | n
  else if (n < 0x100) {
    buf[len++] = m | 24
    buf[len++] = n
  } else if (n < 0x10000) {
    buf[len++] = m | 25
    buf.writeUInt16BE(n, len)
    len += 2
  } else if (n < 0x100000000) {
    buf[len++] = m | 26
    buf.writeUInt32BE(n, len)
    len += 4
  } else {
    buf[len++] = m | 27
    buf.writeBigUInt64BE(BigInt(n), len)
    len += 8
  }
}

function str(s: string): void {
  const n = Buffer.byteLength(s)
  head(3, n)
  ensure(n)
  len += buf.write(s, len, 'utf8')
}

const keyBytes = new Map<string, Buffer>()
function keyEnc(k: string): Buffer {
  let b = keyBytes.get(k)
  if (b === undefined) {
    b = Buffer.from(encode(k))
    if (keyBytes.size < 10_000) keyBytes.set(k, b)
  }
  return b
}

// Key orders, cached per key list (in the object's own order) in a trie walked key by key: no
// string joining per object. Each node knows the canonical order of the keys on its path.
interface KeyEntry {
  readonly k: string
  readonly enc: Buffer
}
interface Shape {
  readonly next: Map<string, Shape>
  order?: readonly KeyEntry[]
}
const shapes: Shape = { next: new Map() }
let shapeNodes = 0
const SHAPE_NODES_MAX = 10_000

function canonicalOrder(keys: readonly string[]): KeyEntry[] {
  return keys.map(k => ({ k, enc: keyEnc(k) })).sort((a, b) => Buffer.compare(a.enc, b.enc))
}

/** The defined keys of `o` in canonical order. */
function orderOf(o: Record<string, unknown>): readonly KeyEntry[] {
  let node: Shape | undefined = shapes
  const keys = Object.keys(o)
  let defined = 0
  for (const k of keys) {
    if (o[k] === undefined) continue
    defined++
    if (node === undefined) continue
    let nx: Shape | undefined = node.next.get(k)
    if (nx === undefined && shapeNodes < SHAPE_NODES_MAX) {
      nx = { next: new Map() }
      node.next.set(k, nx)
      shapeNodes++
    }
    node = nx
  }
  const list = defined === keys.length ? keys : keys.filter(k => o[k] !== undefined)
  if (node === undefined) return canonicalOrder(list) // trie full: sort without caching
  node.order ??= canonicalOrder(list)
  return node.order
}

class Unsupported extends Error {}

// Encodings of frozen objects that recur in every result (e.g. a passing claim's status).
const memo = new WeakMap<object, Buffer>()

/** Freezes `v` (deeply) and remembers its canonical encoding, so later digests copy the bytes. */
export function memoizeCanonical<T extends Canonical>(v: T): T {
  const saved = len
  const savedBuf = buf
  buf = Buffer.allocUnsafe(256)
  len = 0
  try {
    write(v, 0)
    if (typeof v === 'object' && v !== null) memo.set(v, Buffer.from(buf.subarray(0, len)))
  } finally {
    buf = savedBuf
    len = saved
  }
  return deepFreeze(v)
}

function deepFreeze<T>(v: T): T {
  if (typeof v === 'object' && v !== null && !(v instanceof Uint8Array)) {
    for (const x of Object.values(v)) deepFreeze(x)
    Object.freeze(v)
  }
  return v
}

function write(v: unknown, depth: number): void {
  if (depth > 64) throw new Unsupported()
  if (v === null) {
    ensure(1)
    buf[len++] = 0xf6
    return
  }
  if (v === true) {
    ensure(1)
    buf[len++] = 0xf5
    return
  }
  if (v === false) {
    ensure(1)
    buf[len++] = 0xf4
    return
  }
  if (typeof v === 'number') {
    if (!Number.isSafeInteger(v)) throw new Unsupported()
    if (v >= 0) head(0, v)
    else head(1, -1 - v)
    return
  }
  if (typeof v === 'string') {
    str(v)
    return
  }
  if (v instanceof Uint8Array) {
    head(2, v.length)
    ensure(v.length)
    buf.set(v, len)
    len += v.length
    return
  }
  if (typeof v === 'object' && v !== null) {
    const m = memo.get(v)
    if (m !== undefined) {
      ensure(m.length)
      m.copy(buf, len)
      len += m.length
      return
    }
  }
  if (Array.isArray(v)) {
    head(4, v.length)
    for (const x of v) write(x, depth + 1)
    return
  }
  if (typeof v === 'object') {
    const proto = Object.getPrototypeOf(v)
    if (proto !== Object.prototype && proto !== null) throw new Unsupported()
    const o = v as Record<string, unknown>
    const order = orderOf(o)
    head(5, order.length)
    for (const { k, enc } of order) {
      ensure(enc.length)
      for (let i = 0; i < enc.length; i++) buf[len++] = enc[i]
      write(o[k], depth + 1)
    }
    return
  }
  throw new Unsupported()
}

/** sha256 (hex) of the canonical encoding of `v`. */
export function canonicalSha256(v: Canonical): string {
  len = 0
  try {
    write(v, 0)
  } catch (err) {
    if (!(err instanceof Unsupported)) throw err
    return createHash('sha256').update(encode(v)).digest('hex')
  }
  return hash('sha256', buf.subarray(0, len), 'hex')
}
