// The app-hash tree: incremental updates equal a rebuild from scratch; inclusion proofs verify and
// fail for anything tampered.
import t from 'tap'
import { DatabaseSync } from 'node:sqlite'
import { StateStore, encodeProof, verifyStateProof, type WriteSet } from '../../chain/store.ts'
import { decode, encode } from '../../encoding/canonical.ts'

t.test('incremental root = rebuilt root; proofs', async t => {
  const db = new DatabaseSync(':memory:')
  const s = new StateStore(db)
  const empty = s.root
  let n = 0
  for (let block = 0; block < 20; block++) {
    const w: WriteSet = new Map()
    for (let i = 0; i < 300; i++) { n++; w.set(`k/${(n * 7919) % 2000}`, new Uint8Array([n & 0xff, block])) }
    if (block > 5) for (let i = 0; i < 30; i++) w.set(`k/${(block * 31 + i) % 2000}`, null)
    const p = s.prepare(w)
    db.exec('BEGIN'); s.persist(w); db.exec('COMMIT')
    s.install(p)
    t.same(p.root, s.root)
  }
  t.notSame(s.root, empty)
  const rebuilt = new StateStore(db)
  t.same(rebuilt.root, s.root, 'a store rebuilt from SQLite has the same root as the incrementally updated one')
  const rows = db.prepare('SELECT k, v FROM state').all() as Array<{ k: string, v: Uint8Array }>
  let bad = 0
  for (const r of rows.slice(0, 200)) if (!verifyStateProof(s.root, r.k, new Uint8Array(r.v), encodeProof(s.proof(r.k)))) bad++
  t.equal(bad, 0, 'every proof verifies')
  const key = rows[0].k
  const value = new Uint8Array(rows[0].v)
  const proof = decode(encodeProof(s.proof(key))) as { bucket: number, leaves: Uint8Array[], siblings: Uint8Array[] }
  const tamper = (f: (p: typeof proof) => void): Uint8Array => { const c = decode(encodeProof(s.proof(key))) as typeof proof; f(c); return encode(c) }
  t.notOk(verifyStateProof(s.root, key, new Uint8Array([9, 9, 9]), encodeProof(s.proof(key))), 'wrong value')
  t.notOk(verifyStateProof(s.root, rows[1].k, value, encodeProof(s.proof(key))), 'wrong key')
  t.notOk(verifyStateProof(s.root, key, value, tamper(p => { p.siblings[20] = new Uint8Array(32) })), 'tampered sibling')
  t.notOk(verifyStateProof(s.root, key, value, tamper(p => { p.siblings.pop() })), 'truncated proof')
  t.notOk(verifyStateProof(s.root, key, value, tamper(p => { p.leaves.push(new Uint8Array(32)) })), 'extra leaf')
  t.notOk(verifyStateProof(empty, key, value, encodeProof(s.proof(key))), 'other root')
  t.notOk(verifyStateProof(s.root, key, value, new Uint8Array([1, 2])), 'garbage proof')
  t.equal(proof.siblings.length, 64)
})
