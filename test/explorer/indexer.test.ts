// The explorer's index over a real embedded chain: round latency from an attest.request to the
// attest.record that closed it, apps with their versions and publisher, usage per app over time.
// Transactions the chain refused (a record for a round never requested, a usage report that
// overlaps the node's last one, a publish under someone else's name) must change nothing shown.
import t from 'tap'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { initChainHome, startEmbeddedValidator } from '../../chain/validator.ts'
import { ChainClient, TxRejectedError } from '../../chain/client.ts'
import { generateChainKey } from '../../chain/keys.ts'
import { createTestOnlyQuorumRules, encodeTestOnlyQc } from '../../chain/testing.ts'
import type { AppPublishBody } from '../../chain/types.ts'
import { ChainIndex } from '../../agent/explorer/indexer.ts'
import { toHex } from '../../encoding/bytes.ts'
import { fakeDer } from '../chain/harness.ts'

const CID = 'bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi'
const app = (version: string, fill: string): AppPublishBody => ({
  name: 'hello',
  version,
  digest: `sha256:${fill.repeat(64)}`,
  cid: CID,
  size: 4096,
  port: 8080,
  limits: { memoryBytes: 64 << 20, pids: 64 },
  idleTimeoutMs: 30_000
})

t.test('index: round latency, apps, usage — refused txs change nothing', async t => {
  const home = await mkdtemp(join(tmpdir(), 'quorate-index-'))
  t.teardown(async () => {
    await rm(home, { recursive: true, force: true })
  })
  const gv = await generateChainKey()
  // legacy rules: a genesis verifier without a BLS key is a committee candidate, so a test QC
  // from the test-only rules closes the round (the certification rules have their own tests)
  await initChainHome({ home, chainId: 'index-test', verifiers: [gv.peerId], certification: { rules: 'legacy' } })
  const v = await startEmbeddedValidator({
    home,
    rules: createTestOnlyQuorumRules(),
    blockIntervalMs: 0,
    emptyBlockIntervalMs: 100
  })
  t.teardown(async () => {
    await v.stop()
  })
  const c = new ChainClient({ url: v.url })
  t.teardown(() => {
    c.close()
  })
  const refused = async (p: Promise<unknown>): Promise<void> => {
    const err = await p.then(
      () => undefined,
      (e: unknown) => e
    )
    if (!(err instanceof TxRejectedError) || err.phase !== 'deliver')
      throw new Error(`expected a tx refused in its block, got ${String(err)}`)
  }

  const node = await generateChainKey()
  const alice = await generateChainKey()
  await c.send(
    'node.register',
    { nodeId: node.peerId, ekCertificate: fakeDer(1), akPublic: new Uint8Array([1]), addrs: [] },
    node
  )
  const req = await c.send('attest.request', { nodeId: node.peerId, round: 1 }, node)
  await c.waitForSeed(node.peerId, 1)
  // a record for this round whose QC names a committee member that is no candidate lands in a
  // block first, refused: the round is still open, and its latency must not end here
  await refused(
    c.send(
      'attest.record',
      {
        nodeId: node.peerId,
        round: 1,
        qc: encodeTestOnlyQc({ outcome: 'fail', expiresAt: Date.now() + 1e9, committee: [alice.peerId] })
      },
      gv
    )
  )
  const rec = await c.send(
    'attest.record',
    { nodeId: node.peerId, round: 1, qc: encodeTestOnlyQc({ outcome: 'pass', expiresAt: Date.now() + 1e9 }) },
    gv
  )

  const mallory = await generateChainKey()
  await c.send('app.publish', app('1', 'a'), alice)
  await c.send('app.publish', app('2', 'b'), alice)
  await refused(c.send('app.publish', app('3', 'c'), mallory))
  await c.send('app.revoke', { name: 'hello', version: '1' }, alice)
  const now = Date.now()
  const use = await c.send(
    'usage.record',
    {
      nodeId: node.peerId,
      from: now - 60_000,
      to: now,
      apps: [{ app: 'hello', requests: 5, bytesIn: 10, bytesOut: 20 }]
    },
    node
  )
  await refused(
    c.send(
      'usage.record',
      {
        nodeId: node.peerId,
        from: now - 30_000,
        to: now + 1000,
        apps: [{ app: 'hello', requests: 1000, bytesIn: 1, bytesOut: 1 }]
      },
      node
    )
  )

  // a second round, refused: the chain's last QC is now round 2's, so round 1's outcome is read
  // from the QC its record carried
  const req2 = await c.send('attest.request', { nodeId: node.peerId, round: 2 }, node)
  await c.waitForSeed(node.peerId, 2)
  const rec2 = await c.send(
    'attest.record',
    { nodeId: node.peerId, round: 2, qc: encodeTestOnlyQc({ outcome: 'fail', expiresAt: Date.now() + 1e9 }) },
    gv
  )

  const index = new ChainIndex(c)
  t.equal(await index.refresh(), true)
  const s = index.snapshot
  if (s === undefined) throw new Error('no snapshot')
  t.same(
    s.rounds.map(r => [r.nodeId, r.round, r.requestHeight, r.recordHeight, r.outcome]),
    [
      [node.peerId, 1, req.height, rec.height, 'pass'],
      [node.peerId, 2, req2.height, rec2.height, 'fail']
    ],
    'each round from its request to its accepted record (not the refused one before it), with its outcome'
  )
  t.equal(s.rounds[0].blocks, rec.height - req.height, 'latency in blocks')
  t.ok(s.rounds[0].ms > 0, `and in block time (${s.rounds[0].ms} ms)`)
  t.equal(s.apps.length, 1)
  const a = s.apps[0]
  t.equal(a.name, 'hello')
  t.equal(a.publisher, toHex(alice.publicKey), 'the publisher is the first key, not the refused one')
  t.equal(a.current, '2')
  t.same(
    a.versions.map(x => [x.version, x.digest.slice(7, 9), x.revokedAt !== undefined]),
    [
      ['1', 'aa', true],
      ['2', 'bb', false]
    ],
    'versions with their digests; version 1 revoked'
  )
  t.equal(a.requests, 5, 'requests as the chain counted them')
  t.same(a.nodes, [node.peerId], 'served by the node that reported')
  t.same(
    s.usage.map(u => [u.app, u.nodeId, u.requests, u.height]),
    [['hello', node.peerId, 5, use.height]],
    'usage over time: the accepted report only'
  )
  const types = new Set(s.recentTxs.map(x => x.type))
  for (const ty of ['app.publish', 'app.revoke', 'usage.record', 'attest.record'])
    t.ok(types.has(ty), `${ty} listed among recent transactions`)

  // nothing new: a refresh at the same height changes nothing
  const h = s.height
  await c.waitForHeight(h)
  const again = await index.refresh()
  t.equal(index.snapshot?.rounds.length, 2, again ? 'later empty blocks add no round' : 'same height, same rounds')
})
