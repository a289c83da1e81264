// Keys chosen to pile into one bucket of the app-hash tree (issue 9 item 4). Under the old bucket
// function (FNV-1a, 16 bits) finding such keys is nearly free; under sha256 it costs ~65,536
// hashes per key, and even a bucket that holds many keys keeps its proofs to ⌈log2 m⌉ hashes
// inside the bucket (an RFC 6962 tree) instead of all m leaves.
import t from 'tap'
import { DatabaseSync } from 'node:sqlite'
import { hash } from 'node:crypto'
import { StateStore, bucketOf, encodeProof, verifyStateProof, type WriteSet } from '../../chain/store.ts'

/** The old bucket function: FNV-1a over the UTF-16 code units, folded to 16 bits. */
function fnvBucket(key: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  h ^= h >>> 16
  return (h >>> 0) & 0xffff
}

/** `n` keys `${prefix}<suffix>` whose bucket under `bucket` is `target` (a deterministic search). */
function grind(prefix: string, n: number, target: number, bucket: (k: string) => number): string[] {
  const out: string[] = []
  for (let i = 0; out.length < n; i++) {
    const k = prefix + i.toString(36)
    if (bucket(k) === target) out.push(k)
  }
  return out
}

/** A store holding `keys` (one block), and the proof of each. */
function storeWith(keys: string[]): { s: StateStore; proofs: Uint8Array[] } {
  const db = new DatabaseSync(':memory:')
  const s = new StateStore(db)
  const w: WriteSet = new Map(keys.map((k, i) => [k, new Uint8Array([i & 0xff, i >> 8])]))
  const p = s.prepare(w)
  db.exec('BEGIN')
  s.persist(w)
  db.exec('COMMIT')
  s.install(p)
  return { s, proofs: keys.map(k => encodeProof(s.proof(k))) }
}

/** A proof's bytes: 64 tree hashes + the in-bucket path + a little CBOR framing. */
const proofBound = (m: number): number => 32 * (64 + Math.ceil(Math.log2(Math.max(m, 1)))) + 200

/** `n` keys `${prefix}xxxx` in FNV-1a bucket `target`: FNV-1a runs from the prefix's state, so each try costs a step. */
function grindFnv(prefix: string, n: number, target: number): string[] {
  const A = 'abcdefghijklmnopqrstuvwxyz0123456789'
  let h0 = 0x811c9dc5
  for (let i = 0; i < prefix.length; i++) {
    h0 ^= prefix.charCodeAt(i)
    h0 = Math.imul(h0, 0x01000193)
  }
  const out: string[] = []
  const step = (h: number, c: number): number => Math.imul(h ^ A.charCodeAt(c), 0x01000193)
  for (let a = 0; a < A.length; a++) {
    const ha = step(h0, a)
    for (let b = 0; b < A.length; b++) {
      const hb = step(ha, b)
      for (let c = 0; c < A.length; c++) {
        const hc = step(hb, c)
        for (let d = 0; d < A.length; d++) {
          let h = step(hc, d)
          h ^= h >>> 16
          if (((h >>> 0) & 0xffff) === target) {
            out.push(prefix + A[a] + A[b] + A[c] + A[d])
            if (out.length === n) return out
          }
        }
      }
    }
  }
  return out
}

t.test('keys ground into one FNV-1a bucket spread out under sha256', async t => {
  const keys = grindFnv('img/attacker/', 400, 0x1234)
  t.same(new Set(keys.map(fnvBucket)), new Set([0x1234]), '400 keys in one bucket under the old function')
  const sizes = new Map<number, number>()
  for (const k of keys) sizes.set(bucketOf(k), (sizes.get(bucketOf(k)) ?? 0) + 1)
  const largest = Math.max(...sizes.values())
  t.ok(largest <= 4, `under sha256 they fall into ${sizes.size} buckets, at most ${largest} in one`)
  const { s, proofs } = storeWith(keys)
  t.ok(
    proofs.every((p, i) => verifyStateProof(s.root, keys[i], new Uint8Array([i & 0xff, i >> 8]), p)),
    'every proof verifies'
  )
  const biggest = Math.max(...proofs.map(p => p.byteLength))
  t.ok(
    biggest <= proofBound(largest),
    `largest proof ${biggest} bytes (the old scheme's would hold all 400 leaves: > ${400 * 32} bytes)`
  )
})

t.test('keys ground into one sha256 bucket: proofs stay logarithmic', async t => {
  // ~65,536 sha256 per key: the cost an attacker now pays for each key it piles up
  const sha16 = (k: string): number => {
    const d = hash('sha256', k, 'binary')
    return (d.charCodeAt(0) << 8) | d.charCodeAt(1)
  }
  const keys = grind('img/attacker/', 12, 0xbeef, sha16)
  t.same(
    keys.map(bucketOf),
    keys.map(() => 0xbeef),
    'the store buckets them as the grinder did: all in one bucket'
  )
  const { s, proofs } = storeWith(keys)
  const decoded = keys.map(k => s.proof(k))
  t.ok(
    decoded.every(p => p.count === keys.length),
    `the bucket holds all ${keys.length}`
  )
  t.ok(
    decoded.every(
      p => p.path.length <= Math.ceil(Math.log2(keys.length)) && p.path.length >= Math.floor(Math.log2(keys.length))
    ),
    `each proof carries ${Math.floor(Math.log2(keys.length))}–${Math.ceil(Math.log2(keys.length))} in-bucket hashes, not ${keys.length} leaves`
  )
  t.ok(
    proofs.every((p, i) => verifyStateProof(s.root, keys[i], new Uint8Array([i & 0xff, i >> 8]), p)),
    'every proof verifies'
  )
  t.ok(
    proofs.every(p => p.byteLength <= proofBound(keys.length)),
    `every proof ≤ ${proofBound(keys.length)} bytes`
  )
  t.notOk(
    verifyStateProof(s.root, keys[0], new Uint8Array([1, 0]), proofs[0]),
    "a neighbour's value does not verify at this key"
  )
  t.notOk(verifyStateProof(s.root, keys[1], new Uint8Array([1, 0]), proofs[0]), "nor with another key's proof")
  // the bound holds for any bucket size, not only this one
  t.equal(proofBound(1 << 20) - proofBound(1), 32 * 20, 'a million keys in one bucket would add 20 hashes per proof')
})
