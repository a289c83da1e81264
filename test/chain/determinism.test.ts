// Determinism: fresh nodes fed the same blocks reach the same app hash at every height, whether
// in memory or on disk, and a reopened database recomputes the same app hash.
import t from 'tap'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { makeChain, fakeDer, testQc } from './harness.ts'
import { createChainApp } from '../../chain/app.ts'
import { generateChainKey } from '../../chain/keys.ts'
import { createTestOnlyQuorumRules } from '../../chain/testing.ts'
import { toHex } from '../../encoding/bytes.ts'

t.test('same blocks, same app hash at every height', async t => {
  const dir = await mkdtemp(join(tmpdir(), 'quorate-det-'))
  t.teardown(async () => {
    await rm(dir, { recursive: true, force: true })
  })
  const gv = await generateChainKey()
  const a = await makeChain({ verifiers: [gv] })
  const keys = await Promise.all([0, 1, 2].map(async () => await generateChainKey()))
  const nodes = await Promise.all([0, 1].map(async () => await generateChainKey()))
  // a mixed history: successes, failures, attestation rounds, revocations
  a.block([
    a.tx('vendor.register', { name: 'acme' }, keys[0]),
    a.tx('vendor.register', { name: 'acme' }, keys[1]),
    a.tx('vendor.register', { name: 'b' }, keys[1])
  ])
  a.block([
    a.tx(
      'firmware.publish',
      { vendor: 'acme', platform: 'p', version: '1', bank: 'sha256', pcrs: { 0: { golden: [new Uint8Array(32)] } } },
      keys[0]
    )
  ])
  for (const n of nodes)
    a.block([
      a.tx(
        'node.register',
        { nodeId: n.peerId, ekCertificate: fakeDer(1), akPublic: new Uint8Array([1]), addrs: [], platform: 'acme/p' },
        n
      )
    ])
  a.block(nodes.map(n => a.tx('attest.request', { nodeId: n.peerId, round: 1 }, n)))
  a.block([])
  a.block(
    nodes.map((n, i) =>
      a.tx(
        'attest.record',
        { nodeId: n.peerId, round: 1, qc: testQc(i === 0 ? 'pass' : 'fail', a.clock.now + 100_000) },
        keys[2]
      )
    )
  )
  for (let i = 0; i < 20; i++) {
    a.block([
      a.tx(
        'image.publish',
        {
          name: `img${i % 3}`,
          digest: 'sha256:' + i.toString(16).padStart(64, '0'),
          cid: 'bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy',
          size: i
        },
        keys[i % 3]
      )
    ])
  }
  a.block([a.tx('firmware.revoke', { vendor: 'acme', platform: 'p', version: '1' }, keys[0])])
  const blocks = [...a.producer.store.blocks()]
  t.ok(blocks.length > 25)

  const dbPath = join(dir, 'b.sqlite')
  const b = createChainApp({ rules: createTestOnlyQuorumRules() })
  const c = createChainApp({ rules: createTestOnlyQuorumRules(), path: dbPath })
  for (const app of [b, c]) app.initChain(a.genesis)
  let diverged = 0
  for (const blk of blocks) {
    for (const app of [b, c]) {
      const r = app.finalizeBlock({ height: blk.header.height, time: blk.header.time, hash: blk.hash, txs: blk.txs })
      app.commit()
      if (toHex(r.appHash) !== toHex(blk.appHash)) diverged++
      if (r.txResults.map(x => x.code).join() !== blk.results.map(x => x.code).join()) diverged++
    }
  }
  t.equal(diverged, 0, 'no divergence at any height, in memory or on disk')
  t.same(b.info().appHash, a.app.info().appHash)
  c.close()
  const reopened = createChainApp({ rules: createTestOnlyQuorumRules(), path: dbPath })
  t.same(reopened.info().appHash, a.app.info().appHash, 'reopened database recomputes the same app hash')
  t.equal(reopened.info().height, a.app.info().height)
  reopened.close()
  b.close()
})
