// StateStore.get answers from memory (absent keys from the leaf maps, values from a bounded cache):
// it must always equal what SQLite holds for the committed state, including after deletions, a
// rolled-back block, more keys than the cache holds, and batched multi-row writes.
import t from 'tap'
import { DatabaseSync } from 'node:sqlite'
import { StateStore, type WriteSet } from '../../chain/store.ts'
import { createChainApp } from '../../chain/app.ts'
import { createTestOnlyQuorumRules } from '../../chain/testing.ts'
import { generateChainKey } from '../../chain/keys.ts'
import { buildTx } from '../../chain/tx.ts'
import { encode } from '../../encoding/canonical.ts'

function sqliteState(db: DatabaseSync): Map<string, string> {
  const m = new Map<string, string>()
  for (const r of db.prepare('SELECT k, v FROM state').all() as Array<{ k: string; v: Uint8Array }>)
    m.set(r.k, Buffer.from(r.v).toString('hex'))
  return m
}

t.test('get = SQLite after every block; deletions; rollback leaves no trace', async t => {
  const db = new DatabaseSync(':memory:')
  const s = new StateStore(db)
  let seq = 0
  const keys: string[] = Array.from({ length: 70_000 }, (_, i) => `k/${i}`) // more than the cache holds
  for (let block = 0; block < 4; block++) {
    const w: WriteSet = new Map()
    for (let i = 0; i < 18_000; i++) {
      seq++
      w.set(keys[(seq * 7919) % keys.length], new Uint8Array([seq & 0xff, block, 1]))
    }
    for (let i = 0; i < 500; i++) w.set(keys[(block * 977 + i * 13) % keys.length], null)
    const p = s.prepare(w)
    db.exec('BEGIN')
    s.persist(w)
    db.exec('COMMIT')
    s.install(p)
  }
  // a block that fails to commit: nothing of it may become visible
  const bad: WriteSet = new Map([
    ['k/1', new Uint8Array([42])],
    ['new/key', new Uint8Array([1])],
    ['k/2', null]
  ])
  const before = { k1: s.get('k/1'), k2: s.get('k/2') }
  s.prepare(bad)
  db.exec('BEGIN')
  s.persist(bad)
  db.exec('ROLLBACK')
  const state = sqliteState(db)
  let mismatches = 0
  for (const k of keys) {
    const v = s.get(k)
    const want = state.get(k)
    if ((v === undefined ? undefined : Buffer.from(v).toString('hex')) !== want) mismatches++
  }
  t.equal(mismatches, 0, 'every key reads as SQLite holds it (present or absent)')
  t.ok(state.size > 40_000 && state.size < keys.length, `some keys deleted, most present (${state.size})`)
  t.equal(s.get('new/key'), undefined)
  t.same(s.get('k/1'), before.k1)
  t.same(s.get('k/2'), before.k2)
  t.same(new StateStore(db).root, s.root, 'a rebuilt store has the same root')
})

t.test('app: failed commit keeps the previous state readable and the chain continues', async t => {
  const app = createChainApp({ rules: createTestOnlyQuorumRules() })
  const val = await generateChainKey()
  const k = await generateChainKey()
  app.initChain({ chainId: 'c', genesisTime: 0, initialHeight: 1, validators: [val.publicKey], verifiers: [] })
  const tx0 = buildTx('vendor.register', { name: 'acme' }, k, 0, 'c')
  app.finalizeBlock({ height: 1, time: 1, hash: new Uint8Array(32), txs: [tx0] })
  t.throws(
    () =>
      app.commit(() => {
        throw new Error('disk full')
      }),
    /disk full/
  )
  t.equal(
    app.query({ path: '/vendor', data: encode({ name: 'acme' }) }).code,
    8,
    'the uncommitted vendor is not visible'
  )
  t.equal(app.info().height, 0)
  const r = app.finalizeBlock({ height: 1, time: 1, hash: new Uint8Array(32), txs: [tx0] })
  t.equal(r.txResults[0].code, 0)
  app.commit()
  t.equal(app.query({ path: '/vendor', data: encode({ name: 'acme' }) }).code, 0, 'committed on the second try')
  app.close()
})
