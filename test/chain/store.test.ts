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
    for (let i = 0; i < 300; i++) {
      n++
      w.set(`k/${(n * 7919) % 2000}`, new Uint8Array([n & 0xff, block]))
    }
    if (block > 5) for (let i = 0; i < 30; i++) w.set(`k/${(block * 31 + i) % 2000}`, null)
    const p = s.prepare(w)
    db.exec('BEGIN')
    s.persist(w)
    db.exec('COMMIT')
    s.install(p)
    t.same(p.root, s.root)
  }
  t.notSame(s.root, empty)
  const rebuilt = new StateStore(db)
  t.same(rebuilt.root, s.root, 'a store rebuilt from SQLite has the same root as the incrementally updated one')
  const rows = db.prepare('SELECT k, v FROM state').all() as Array<{ k: string; v: Uint8Array }>
  let bad = 0
  for (const r of rows.slice(0, 200))
    if (!verifyStateProof(s.root, r.k, new Uint8Array(r.v), encodeProof(s.proof(r.k)))) bad++
  t.equal(bad, 0, 'every proof verifies')
  const key = rows[0].k
  const value = new Uint8Array(rows[0].v)
  const proof = decode(encodeProof(s.proof(key))) as {
    bucket: number
    index: number
    count: number
    path: Uint8Array[]
    siblings: Uint8Array[]
  }
  const tamper = (f: (p: typeof proof) => void): Uint8Array => {
    const c = decode(encodeProof(s.proof(key))) as typeof proof
    f(c)
    return encode(c)
  }
  t.notOk(verifyStateProof(s.root, key, new Uint8Array([9, 9, 9]), encodeProof(s.proof(key))), 'wrong value')
  t.notOk(verifyStateProof(s.root, rows[1].k, value, encodeProof(s.proof(key))), 'wrong key')
  t.notOk(
    verifyStateProof(
      s.root,
      key,
      value,
      tamper(p => {
        p.siblings[20] = new Uint8Array(32)
      })
    ),
    'tampered sibling'
  )
  t.notOk(
    verifyStateProof(
      s.root,
      key,
      value,
      tamper(p => {
        p.siblings.pop()
      })
    ),
    'truncated proof'
  )
  // a key in a bucket with others, so its proof has an in-bucket path to tamper with
  const shared = rows.find(r => s.proof(r.k).count >= 2)
  t.ok(shared !== undefined, 'some bucket holds two keys or more')
  if (shared !== undefined) {
    const k2 = shared.k
    const v2 = new Uint8Array(shared.v)
    const p2 = (): typeof proof => decode(encodeProof(s.proof(k2))) as typeof proof
    const tamper2 = (f: (p: typeof proof) => void): Uint8Array => {
      const c = p2()
      f(c)
      return encode(c)
    }
    t.ok(verifyStateProof(s.root, k2, v2, encodeProof(s.proof(k2))), 'a proof inside a shared bucket verifies')
    t.equal(p2().path.length, Math.ceil(Math.log2(p2().count)), 'its in-bucket path has ⌈log2 m⌉ hashes')
    t.notOk(
      verifyStateProof(
        s.root,
        k2,
        v2,
        tamper2(p => {
          p.path[0] = new Uint8Array(32)
        })
      ),
      'tampered in-bucket path'
    )
    t.notOk(
      verifyStateProof(
        s.root,
        k2,
        v2,
        tamper2(p => {
          p.path.push(new Uint8Array(32))
        })
      ),
      'extra path hash'
    )
    t.notOk(
      verifyStateProof(
        s.root,
        k2,
        v2,
        tamper2(p => {
          p.index = (p.index + 1) % p.count
        })
      ),
      'wrong index'
    )
    t.notOk(
      verifyStateProof(
        s.root,
        k2,
        v2,
        tamper2(p => {
          p.count += 1
        })
      ),
      'wrong count'
    )
    t.notOk(
      verifyStateProof(
        s.root,
        k2,
        v2,
        tamper2(p => {
          p.index = p.count
        })
      ),
      'index beyond count'
    )
  }
  t.notOk(verifyStateProof(empty, key, value, encodeProof(s.proof(key))), 'other root')
  t.notOk(verifyStateProof(s.root, key, value, new Uint8Array([1, 2])), 'garbage proof')
  t.equal(proof.siblings.length, 64)
})

t.test('a database written under the old app-hash scheme is refused with a clear error', async t => {
  const db = new DatabaseSync(':memory:')
  db.exec('CREATE TABLE state (k TEXT PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID')
  db.prepare('INSERT INTO state (k, v) VALUES (?, ?)').run('vendor/acme', new Uint8Array([1]))
  t.throws(() => new StateStore(db), {
    name: 'ConfigError',
    message: /app-hash scheme 1; this quorate computes scheme 2 .*Start a new chain from genesis/
  })
  const fresh = new DatabaseSync(':memory:')
  const s = new StateStore(fresh)
  const w: WriteSet = new Map([['vendor/acme', new Uint8Array([1])]])
  fresh.exec('BEGIN')
  s.persist(w)
  fresh.exec('COMMIT')
  t.doesNotThrow(() => new StateStore(fresh), 'a database this version wrote opens again')
})
