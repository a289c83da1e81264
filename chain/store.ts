// State storage: key/value rows in SQLite plus an in-memory bucketed Merkle tree for the app hash.
//
// App hash: each key/value pair has a leaf hash sha256(0x00 ‖ be32(len key) ‖ key ‖ value); keys
// fall into 65536 buckets (bucketOf: the first 16 bits of sha256(key)); a bucket's leaves, sorted
// bytewise, form an RFC 6962 Merkle tree with inner nodes sha256(0x03 ‖ left ‖ right) except its
// top node, sha256(0x01 ‖ left ‖ right), which is the bucket's hash (one leaf: sha256(0x01 ‖
// leaf); none: sha256(0x01)); the app hash is the root of a 16-ary Merkle tree over the 65536 bucket hashes
// (inner nodes sha256(0x02 ‖ 16 children), 4 levels). Updating a block touches only its buckets
// and their paths; an inclusion proof is the leaf's audit path in its bucket (⌈log2 m⌉ hashes)
// plus the 16 children of each of the 4 ancestors (64 hashes).
//
// Keys are names users choose, so an attacker may try to pile keys into one bucket. With
// sha256 each such key costs about 65,536 hashes to find (FNV-1a, used before, could simply be
// inverted), and even a bucket of m ground keys costs only ⌈log2 m⌉ hashes per proof and O(m)
// hashing per block that touches it. The bucket only spreads keys; integrity comes from the
// sha256 leaves and trees.
import type { DatabaseSync, StatementSync } from 'node:sqlite'
import { hash } from 'node:crypto'
import { encode, decode, asMap, field, is, type Canonical } from '../encoding/canonical.ts'
import { ConfigError, InvalidInputError } from '../encoding/errors.ts'

/** proofOps type of an inclusion proof in abci_query. */
export const PROOF_TYPE = 'quorate:bucket-merkle/v2'
export const BUCKET_BITS = 16
const BUCKETS = 1 << BUCKET_BITS
/** The tree over the buckets is 16-ary: 4 levels of inner nodes above the 65,536 buckets. */
const ARITY = 16
const DEPTH = 4
/** Rows per multi-row INSERT/DELETE in persist. */
const BATCH = 64
/** Values kept in memory by StateStore.get. */
const CACHE_ENTRIES = 65_536
const KEY_RE = /^[\x21-\x7e]{1,512}$/

/** Scratch for leaf preimages (grown on demand; the hash is taken before it is reused). */
let leafBuf = Buffer.allocUnsafe(1024)

/**
 * A sha256 digest held as a 32-character latin1 string: a hash then costs no buffer allocation,
 * and strings of latin1 characters sort and compare exactly as their bytes do.
 */
type Digest = string
const digestBytes = (d: Digest): Uint8Array => new Uint8Array(Buffer.from(d, 'latin1'))
const bytesDigest = (b: Uint8Array): Digest => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('latin1')

/** Keys are printable ASCII (enforced on write), so latin1 = UTF-8 here. */
function leafDigest(key: string, value: Uint8Array): Digest {
  const n = 5 + key.length + value.byteLength
  if (n > leafBuf.length) leafBuf = Buffer.allocUnsafe(Math.max(n, leafBuf.length * 2))
  const buf = leafBuf
  buf[0] = 0
  buf.writeUInt32BE(key.length, 1)
  buf.write(key, 5, 'latin1')
  buf.set(value, 5 + key.length)
  return hash('sha256', buf.subarray(0, n), 'binary')
}

export function leafHash(key: string, value: Uint8Array): Uint8Array {
  return digestBytes(leafDigest(key, value))
}

/** Bucket of a key: the first 16 bits of sha256 over its bytes (printable ASCII, so latin1 = UTF-8). */
export function bucketOf(key: string): number {
  const d = hash('sha256', key, 'binary')
  return (d.charCodeAt(0) << 8) | d.charCodeAt(1)
}

/** Scratch for inner node preimages (the 16-ary nodes are the largest: 1 + 16 × 32 bytes). */
const nodeBuf = Buffer.allocUnsafe(1 + 32 * 16)

/** The bucket's leaves, sorted bytewise (the order the bucket hash and proofs use). */
function sortedLeaves(leaves: ReadonlyMap<string, Digest>): Digest[] {
  // most buckets hold one leaf or none: no sort needed
  if (leaves.size === 0) return []
  if (leaves.size === 1) return [leaves.values().next().value as Digest]
  return [...leaves.values()].sort()
}

/** sha256(prefix ‖ a ‖ b) of two digests. */
function pairDigest(prefix: number, a: Digest, b: Digest): Digest {
  const buf = nodeBuf
  buf[0] = prefix
  buf.write(a, 1, 'latin1')
  buf.write(b, 33, 'latin1')
  return hash('sha256', buf.subarray(0, 65), 'binary')
}

/** Largest power of two below n (n ≥ 2): RFC 6962 §2.1's split point. */
const split = (n: number): number => 2 ** Math.floor(Math.log2(n - 1))

/** RFC 6962 Merkle tree hash over sorted leaves[lo, hi), inner nodes sha256(0x03 ‖ left ‖ right). */
function mth(leaves: readonly Digest[], lo: number, hi: number): Digest {
  if (hi - lo === 1) return leaves[lo]
  const k = split(hi - lo)
  return pairDigest(3, mth(leaves, lo, lo + k), mth(leaves, lo + k, hi))
}

/** RFC 6962 §2.1.1 audit path of leaves[i] within leaves[lo, hi), leaf side first. */
function auditPath(leaves: readonly Digest[], i: number, lo: number, hi: number, out: Digest[]): Digest[] {
  if (hi - lo <= 1) return out
  const k = split(hi - lo)
  if (i < lo + k) {
    auditPath(leaves, i, lo, lo + k, out)
    out.push(mth(leaves, lo + k, hi))
  } else {
    auditPath(leaves, i, lo + k, hi, out)
    out.push(mth(leaves, lo, lo + k))
  }
  return out
}

/**
 * The bucket digest from a leaf at `index` of `count` and its audit path (see bucketDigest: the
 * top split combines with 0x01); undefined if the path does not fit.
 */
function bucketFromPath(leaf: Digest, index: number, count: number, path: readonly Digest[]): Digest | undefined {
  // the path is consumed from the top split down, so walk the splits first to know each side
  const sides: boolean[] = [] // true = the leaf is in the right part
  let lo = 0
  let hi = count
  while (hi - lo > 1) {
    const k = split(hi - lo)
    if (index < lo + k) {
      sides.push(false)
      hi = lo + k
    } else {
      sides.push(true)
      lo = lo + k
    }
  }
  if (sides.length !== path.length) return undefined
  if (count === 1) return bucketDigest([leaf])
  let h = leaf
  for (let j = 0; j < path.length; j++) {
    const right = sides[sides.length - 1 - j]
    const prefix = j === path.length - 1 ? 1 : 3
    h = right ? pairDigest(prefix, path[j], h) : pairDigest(prefix, h, path[j])
  }
  return h
}

/** Bucket: its RFC 6962 tree's top node with prefix 0x01 (see the top of this file). */
function bucketDigest(sorted: readonly Digest[]): Digest {
  const n = sorted.length
  if (n >= 2) {
    // the top node takes the bucket's prefix: one hash fewer than sha256(0x01 ‖ tree root)
    const k = split(n)
    return pairDigest(1, mth(sorted, 0, k), mth(sorted, k, n))
  }
  const buf = nodeBuf
  buf[0] = 1
  if (n === 1) buf.write(sorted[0], 1, 'latin1')
  return hash('sha256', buf.subarray(0, 1 + 32 * n), 'binary')
}

/** Inner node: sha256(0x02 ‖ its 16 children). */
function nodeDigest(children: readonly Digest[]): Digest {
  const buf = nodeBuf
  buf[0] = 2
  for (let i = 0; i < ARITY; i++) buf.write(children[i], 1 + 32 * i, 'latin1')
  return hash('sha256', buf.subarray(0, 1 + 32 * ARITY), 'binary')
}

/**
 * How the app hash is computed from the state (the comment at the top): 2 = sha256 buckets with
 * an RFC 6962 tree inside each. Scheme 1 (FNV-1a buckets, a flat hash of each bucket's leaves)
 * gives other app hashes for the same state, so a database written under it cannot be continued:
 * its blocks carry scheme-1 app hashes.
 */
export const STATE_SCHEME = 2

function checkScheme(db: DatabaseSync): void {
  db.exec('CREATE TABLE IF NOT EXISTS state_scheme (version INTEGER NOT NULL)')
  const row = db.prepare('SELECT version FROM state_scheme').get() as { version: number } | undefined
  const found = row?.version ?? (db.prepare('SELECT 1 FROM state LIMIT 1').get() === undefined ? undefined : 1)
  if (found === undefined) db.prepare('INSERT INTO state_scheme (version) VALUES (?)').run(STATE_SCHEME)
  else if (found !== STATE_SCHEME) {
    throw new ConfigError(
      `this chain database holds state hashed under app-hash scheme ${found}; this quorate computes scheme ${STATE_SCHEME} (sha256 buckets, issue 9), so its blocks' app hashes cannot be continued. Start a new chain from genesis, or run the quorate that wrote it`
    )
  }
}

/** Pending writes: value, or null for a deletion. */
export type WriteSet = Map<string, Uint8Array | null>

export interface KvReader {
  get(key: string): Uint8Array | undefined
  /** Entries whose key starts with `prefix`, sorted by key. */
  scan(prefix: string): Array<[string, Uint8Array]>
}

export interface PreparedRoot {
  readonly root: Uint8Array
  readonly writes: WriteSet
  /** Buckets of the keys the writes add to the state. */
  readonly fresh: Map<string, number>
  /** Touched buckets: key → leaf digest (latin1 string). */
  readonly buckets: Map<number, Map<string, string>>
  /** Changed tree nodes: level * 65536 + index → digest (latin1 string). */
  readonly nodes: Map<number, string>
}

export interface StateProof {
  bucket: number
  /** The leaf's position among its bucket's sorted leaves, and how many there are. */
  index: number
  count: number
  /** RFC 6962 audit path of the leaf in its bucket, leaf side first. */
  path: Uint8Array[]
  /** Per level of the 16-ary tree, bottom first, the 16 children of the ancestor. */
  siblings: Uint8Array[]
}

export class StateStore implements KvReader {
  readonly db: DatabaseSync
  readonly #get: StatementSync
  readonly #scan: StatementSync
  readonly #put: StatementSync
  readonly #del: StatementSync
  readonly #putMany: StatementSync
  readonly #delMany: StatementSync
  /**
   * Recently read or committed values (bounded, oldest dropped first). Reads of absent keys never
   * reach SQLite: the leaf maps below know every key in the state.
   */
  readonly #cache = new Map<string, Uint8Array>()
  /**
   * The bucket of every key in the state: answers "is it there" without hashing the key (most
   * reads in a block are of hot or absent keys) and saves the sha256 of bucketOf on rewrites.
   */
  readonly #where = new Map<string, number>()
  /** Leaf digests per bucket (undefined = empty bucket). */
  readonly #buckets: Array<Map<string, Digest> | undefined>
  /** levels[0] = bucket digests, levels[DEPTH] = [root]. */
  readonly #levels: Digest[][]

  constructor(db: DatabaseSync) {
    this.db = db
    db.exec('CREATE TABLE IF NOT EXISTS state (k TEXT PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID')
    checkScheme(db)
    this.#get = db.prepare('SELECT v FROM state WHERE k = ?')
    this.#scan = db.prepare('SELECT k, v FROM state WHERE k >= ? AND k < ? ORDER BY k')
    this.#put = db.prepare('INSERT INTO state (k, v) VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v')
    this.#del = db.prepare('DELETE FROM state WHERE k = ?')
    this.#putMany = db.prepare(
      'INSERT INTO state (k, v) VALUES ' +
        Array(BATCH).fill('(?, ?)').join(', ') +
        ' ON CONFLICT (k) DO UPDATE SET v = excluded.v'
    )
    this.#delMany = db.prepare('DELETE FROM state WHERE k IN (' + Array(BATCH).fill('?').join(', ') + ')')
    this.#buckets = new Array<Map<string, Digest> | undefined>(BUCKETS).fill(undefined)
    for (const row of db.prepare('SELECT k, v FROM state').iterate() as Iterable<{ k: string; v: Uint8Array }>) {
      const b = bucketOf(row.k)
      this.#where.set(row.k, b)
      const m = this.#buckets[b] ?? new Map<string, Digest>()
      this.#buckets[b] = m
      m.set(row.k, leafDigest(row.k, new Uint8Array(row.v)))
    }
    this.#levels = []
    const emptyBucket = bucketDigest([])
    let level = this.#buckets.map(b => (b === undefined ? emptyBucket : bucketDigest(sortedLeaves(b))))
    this.#levels.push(level)
    while (level.length > 1) {
      const next: Digest[] = []
      for (let i = 0; i < level.length; i += ARITY) next.push(nodeDigest(level.slice(i, i + ARITY)))
      this.#levels.push(next)
      level = next
    }
  }

  /** The committed value (shared: callers must not mutate it). */
  get(key: string): Uint8Array | undefined {
    if (!this.#where.has(key)) return undefined
    const hit = this.#cache.get(key)
    if (hit !== undefined) return hit
    const row = this.#get.get(key) as { v: Uint8Array } | undefined
    if (row === undefined) return undefined
    const v = new Uint8Array(row.v)
    this.#remember(key, v)
    return v
  }

  #remember(key: string, v: Uint8Array): void {
    if (this.#cache.size >= CACHE_ENTRIES) {
      const first = this.#cache.keys().next()
      if (first.done !== true) this.#cache.delete(first.value)
    }
    this.#cache.set(key, v)
  }

  scan(prefix: string): Array<[string, Uint8Array]> {
    const rows = this.#scan.all(prefix, prefix + '\x7f') as Array<{ k: string; v: Uint8Array }>
    return rows.map(r => [r.k, new Uint8Array(r.v)])
  }

  get root(): Uint8Array {
    return digestBytes(this.#levels[DEPTH][0])
  }

  /** Computes the root the state would have after `writes`, without changing anything. */
  prepare(writes: WriteSet): PreparedRoot {
    const touched = new Map<number, Map<string, Digest>>()
    const fresh = new Map<string, number>()
    const buckets = this.#buckets
    writes.forEach((v, k) => {
      let b = this.#where.get(k)
      if (b === undefined) {
        b = bucketOf(k)
        if (v !== null) fresh.set(k, b)
      }
      let m = touched.get(b)
      if (m === undefined) {
        m = new Map()
        const old = buckets[b]
        if (old !== undefined)
          old.forEach((h, key) => {
            ;(m as Map<string, Digest>).set(key, h)
          })
        touched.set(b, m)
      }
      if (v === null) m.delete(k)
      else m.set(k, leafDigest(k, v))
    })
    const nodes = new Map<number, Digest>() // level * BUCKETS + index → digest
    let dirty = new Set<number>()
    touched.forEach((m, b) => {
      nodes.set(b, bucketDigest(sortedLeaves(m)))
      dirty.add(b)
    })
    const at = (lvl: number, i: number): Digest => nodes.get(lvl * BUCKETS + i) ?? this.#levels[lvl][i]
    const children: Digest[] = new Array<Digest>(ARITY)
    for (let lvl = 1; lvl <= DEPTH; lvl++) {
      const next = new Set<number>()
      for (const i of dirty) next.add(Math.floor(i / ARITY))
      for (const p of next) {
        for (let c = 0; c < ARITY; c++) children[c] = at(lvl - 1, p * ARITY + c)
        nodes.set(lvl * BUCKETS + p, nodeDigest(children))
      }
      dirty = next
    }
    return { root: digestBytes(at(DEPTH, 0)), writes, fresh, buckets: touched, nodes }
  }

  /** Writes `writes` to SQLite; the caller holds the SQLite transaction. */
  persist(writes: WriteSet): void {
    // keys are unique, so deletions and insertions commute; sorted for B-tree locality, and
    // BATCH rows per statement to cut the per-statement overhead
    const keys = [...writes.keys()].sort()
    const dels: string[] = []
    const puts: Array<string | Uint8Array> = []
    for (const k of keys) {
      const v = writes.get(k) as Uint8Array | null
      if (v === null) dels.push(k)
      else puts.push(k, v)
    }
    let i = 0
    for (; i + BATCH <= dels.length; i += BATCH) this.#delMany.run(...dels.slice(i, i + BATCH))
    for (; i < dels.length; i++) this.#del.run(dels[i])
    let j = 0
    for (; j + 2 * BATCH <= puts.length; j += 2 * BATCH) this.#putMany.run(...puts.slice(j, j + 2 * BATCH))
    for (; j < puts.length; j += 2) this.#put.run(puts[j], puts[j + 1])
  }

  /** Makes a prepared tree current (after the SQLite transaction committed). */
  install(p: PreparedRoot): void {
    const cache = this.#cache
    const where = this.#where
    p.writes.forEach((v, k) => {
      cache.delete(k)
      if (v !== null) this.#remember(k, v)
      else where.delete(k)
    })
    p.fresh.forEach((b, k) => {
      where.set(k, b)
    })
    const buckets = this.#buckets
    p.buckets.forEach((m, b) => {
      buckets[b] = m.size === 0 ? undefined : m
    })
    const levels = this.#levels
    p.nodes.forEach((h, id) => {
      levels[Math.floor(id / BUCKETS)][id % BUCKETS] = h
    })
  }

  /** Inclusion proof of a key in the state (the caller checked the key is there). */
  proof(key: string): StateProof {
    const b = this.#where.get(key) ?? bucketOf(key)
    // per level, the 16 children of the ancestor (the node's own hash among them)
    const siblings: Uint8Array[] = []
    let i = b
    for (let lvl = 0; lvl < DEPTH; lvl++) {
      const first = Math.floor(i / ARITY) * ARITY
      for (const h of this.#levels[lvl].slice(first, first + ARITY)) siblings.push(digestBytes(h))
      i = Math.floor(i / ARITY)
    }
    const m = this.#buckets[b]
    const leaf = m?.get(key)
    if (m === undefined || leaf === undefined)
      throw new InvalidInputError(`no state at key ${JSON.stringify(key.slice(0, 80))} to prove`)
    const sorted = sortedLeaves(m)
    const index = sorted.indexOf(leaf)
    return {
      bucket: b,
      index,
      count: sorted.length,
      path: auditPath(sorted, index, 0, sorted.length, []).map(digestBytes),
      siblings
    }
  }

  /** Number of entries (for status). */
  get size(): number {
    return this.#where.size
  }
}

export function encodeProof(p: StateProof): Uint8Array {
  return encode({ bucket: p.bucket, index: p.index, count: p.count, path: p.path, siblings: p.siblings })
}

/** Checks that `key` = `value` is in the state whose app hash is `root`. */
export function verifyStateProof(root: Uint8Array, key: string, value: Uint8Array, proofBytes: Uint8Array): boolean {
  let p: StateProof
  try {
    const m = asMap(decode(proofBytes, { maxBytes: 1 << 16, maxItems: 1 << 10 }), 'proof')
    const path = field(m, 'path', 'proof', is.array, 'array') as Canonical[]
    const siblings = field(m, 'siblings', 'proof', is.array, 'array') as Canonical[]
    if (!path.every(is.bytes) || !siblings.every(is.bytes)) return false
    p = {
      bucket: field(m, 'bucket', 'proof', is.uint, 'uint'),
      index: field(m, 'index', 'proof', is.uint, 'uint'),
      count: field(m, 'count', 'proof', is.uint, 'uint'),
      path: path as Uint8Array[],
      siblings: siblings as Uint8Array[]
    }
  } catch {
    return false
  }
  if (p.bucket !== bucketOf(key) || p.siblings.length !== ARITY * DEPTH || p.index >= p.count) return false
  if (!p.path.every(l => l.byteLength === 32) || !p.siblings.every(l => l.byteLength === 32)) return false
  let h = bucketFromPath(leafDigest(key, value), p.index, p.count, p.path.map(bytesDigest))
  if (h === undefined) return false
  let i = p.bucket
  for (let lvl = 0; lvl < DEPTH; lvl++) {
    const group = p.siblings.slice(lvl * ARITY, (lvl + 1) * ARITY).map(bytesDigest)
    if (group[i % ARITY] !== h) return false
    h = nodeDigest(group)
    i = Math.floor(i / ARITY)
  }
  return root.byteLength === 32 && h === bytesDigest(root)
}

/** Write-buffering view over a reader: used per block and, nested, per transaction. */
export class Overlay implements KvReader {
  readonly parent: KvReader
  readonly writes: WriteSet = new Map()
  constructor(parent: KvReader) {
    this.parent = parent
  }

  get(key: string): Uint8Array | undefined {
    const w = this.writes.get(key)
    if (w !== undefined) return w ?? undefined
    return this.parent.get(key)
  }

  set(key: string, value: Uint8Array): void {
    if (!KEY_RE.test(key))
      throw new InvalidInputError(`state key ${JSON.stringify(key.slice(0, 80))} is not printable ASCII`)
    this.writes.set(key, value)
  }

  del(key: string): void {
    this.writes.set(key, null)
  }

  scan(prefix: string): Array<[string, Uint8Array]> {
    const m = new Map(this.parent.scan(prefix))
    for (const [k, v] of this.writes) {
      if (!k.startsWith(prefix)) continue
      if (v === null) m.delete(k)
      else m.set(k, v)
    }
    return [...m].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
  }

  /** Moves this overlay's writes into its parent overlay. */
  mergeInto(parent: Overlay): void {
    const into = parent.writes
    this.writes.forEach((v, k) => {
      into.set(k, v)
    })
  }
}

export function enc(v: Canonical): Uint8Array {
  return encode(v)
}
export function dec<T>(b: Uint8Array): T {
  return decode(b, { maxBytes: 1 << 24, maxItems: 1 << 20 }) as unknown as T
}
export const EMPTY = new Uint8Array(0)
