// The embedded validator's RPC through ChainClient and raw CometBFT-style requests.
import t from 'tap'
import { mkdtemp, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { initChainHome, startEmbeddedValidator, chainPaths, type EmbeddedValidator } from '../../chain/validator.ts'
import type { StoredBlock } from '../../chain/producer.ts'
import { ChainClient, TxRejectedError } from '../../chain/client.ts'
import { generateChainKey } from '../../chain/keys.ts'
import { buildTx } from '../../chain/tx.ts'
import { createTestOnlyQuorumRules } from '../../chain/testing.ts'
import { TxCode } from '../../chain/types.ts'
import { toHex, sha256 } from '../../encoding/bytes.ts'
import { fakeDer } from './harness.ts'

/** The first block committed (already, or from now on) that `pred` accepts; fails after 20 s. */
function committed(v: EmbeddedValidator, pred: (b: StoredBlock) => boolean): Promise<StoredBlock> {
  const last = v.producer.lastBlock
  if (last !== undefined && pred(last)) return Promise.resolve(last)
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off()
      reject(new Error('no such block committed within 20 s'))
    }, 20_000)
    const off = v.producer.onCommit(b => {
      if (pred(b)) {
        clearTimeout(timer)
        off()
        resolve(b)
      }
    })
  })
}

t.test('embedded validator over CometBFT-style RPC', async t => {
  const home = await mkdtemp(join(tmpdir(), 'quorate-chain-'))
  t.teardown(async () => {
    await rm(home, { recursive: true, force: true })
  })
  const gv = await generateChainKey()
  // legacy certification rules: this test is about the RPC and the client's round plumbing (a
  // genesis verifier with no BLS key is a candidate, k = 7); the current rules have their own tests
  const { genesis } = await initChainHome({
    home,
    chainId: 'rpc-test',
    verifiers: [gv.peerId],
    certification: { rules: 'legacy' }
  })
  t.equal((await stat(chainPaths(home).validatorKey)).mode & 0o777, 0o600, 'validator key is 0600')
  await t.rejects(initChainHome({ home }), /already exists/, 'init refuses to overwrite')
  const v = await startEmbeddedValidator({
    home,
    rules: createTestOnlyQuorumRules(),
    blockIntervalMs: 0,
    emptyBlockIntervalMs: 200
  })
  t.teardown(async () => {
    await v.stop()
  })
  t.match(v.url, /^http:\/\/127\.0\.0\.1:\d+$/)
  const c = new ChainClient({ url: v.url })
  t.teardown(() => {
    c.close()
  })

  const st = await c.status()
  t.equal(st.chainId, genesis.chainId)
  const acme = await generateChainKey()
  const r = await c.send('vendor.register', { name: 'acme' }, acme)
  t.ok(r.height > 0, 'committed at a height')
  t.match(r.hash, /^[0-9A-F]{64}$/)
  const dup = await c.send('vendor.register', { name: 'acme' }, await generateChainKey()).catch((e: unknown) => e)
  t.ok(dup instanceof TxRejectedError, 'duplicate refused')
  t.equal((dup as TxRejectedError).txCode, TxCode.CONFLICT)
  t.equal((dup as TxRejectedError).phase, 'deliver')
  // several in a row from one key (sequence tracked by the client), in parallel with another key
  const other = await generateChainKey()
  const sends = await Promise.all([
    c.send('vendor.ekca.publish', { vendor: 'acme', certificate: fakeDer(1) }, acme),
    c.send('vendor.ekca.publish', { vendor: 'acme', certificate: fakeDer(2) }, acme),
    c.send('vendor.register', { name: 'other' }, other)
  ])
  t.equal(sends.length, 3)
  t.equal((await c.ekCas('acme')).length, 2)
  t.equal((await c.vendor('acme'))?.name, 'acme')
  t.equal(await c.vendor('nobody'), undefined)
  t.equal(await c.account(acme.publicKey), 3)

  const info = await c.tx(r.hash)
  t.equal(info?.height, r.height)
  t.equal(info?.result.code, 0)
  t.equal(await c.tx('00'.repeat(32)), undefined, 'unknown tx')
  const b = await c.block(r.height)
  t.equal(b.height, r.height)
  t.equal(b.txs.length >= 1, true)
  await committed(v, b => b.header.height >= r.height + 1)
  const next = await c.block(r.height + 1)
  t.same(next.lastBlockHash, b.hash, 'blocks are hash-linked')

  // broadcast_tx_sync, then the tx shows up
  const seq = await c.account(other.publicKey)
  const tx = buildTx('vendor.ekca.publish', { vendor: 'other', certificate: fakeDer(3) }, other, seq, genesis.chainId)
  const included = committed(v, b => b.txs.some(x => toHex(sha256(x)) === toHex(sha256(tx))))
  const sync = await c.broadcastTxSync(tx)
  t.equal(sync.code, 0)
  t.equal(sync.hash, toHex(sha256(tx)).toUpperCase())
  const bad = await c.broadcastTxSync(buildTx('vendor.register', { name: 'x' }, other, 99, genesis.chainId))
  t.equal(bad.code, TxCode.BAD_SEQUENCE, 'check refuses out-of-order sequence')
  await included
  t.equal((await c.tx(sync.hash))?.result.code, 0, 'the synced tx is found once its block is committed')

  // URI GET forms, as curl would use them
  const s2 = (await (await fetch(`${v.url}/status?`)).json()) as {
    result: { sync_info: { latest_block_height: string } }
  }
  t.match(s2.result.sync_info.latest_block_height, /^\d+$/)
  const q = (await (await fetch(`${v.url}/abci_query?path="/info"`)).json()) as {
    result: { response: { code: number; value: string } }
  }
  t.equal(q.result.response.code, 0)
  const txg = (await (await fetch(`${v.url}/tx?hash=0x${r.hash}`)).json()) as { result: { height: string } }
  t.equal(txg.result.height, String(r.height))
  const unknown = (await (
    await fetch(`${v.url}/`, {
      method: 'POST',
      body: JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'nope', params: {} })
    })
  ).json()) as { id: number; error: { code: number } }
  t.equal(unknown.error.code, -32601)
  t.equal(unknown.id, 7)
  const positional = (await (
    await fetch(`${v.url}/`, {
      method: 'POST',
      body: JSON.stringify({ jsonrpc: '2.0', id: 8, method: 'block', params: [String(r.height)] })
    })
  ).json()) as { result: { block: { header: { height: string } } } }
  t.equal(positional.result.block.header.height, String(r.height))

  // proofs through the client
  const proven = await c.provenValue('vendor/acme')
  t.equal(proven?.verified, true, 'inclusion proof verifies against the status app hash')
  // an attestation round through the client: request, seed from the next block, record
  const node = await generateChainKey()
  await c.send(
    'node.register',
    {
      nodeId: node.peerId,
      ekCertificate: fakeDer(9),
      akPublic: new Uint8Array([4, 5]),
      addrs: ['/ip4/127.0.0.1/tcp/4001']
    },
    node
  )
  const req = await c.requestAttestation(node)
  t.equal(req.round, 1)
  const seed = await c.waitForSeed(node.peerId, 1)
  t.equal(seed.k, 7)
  t.same(
    seed.candidates?.map(x => x.nodeId),
    [gv.peerId],
    'genesis verifier is the only candidate'
  )
  t.same(seed.candidates?.[0].addrs, [], 'unregistered verifier has no addrs')
  const { testQc } = await import('./harness.ts')
  await c.recordAttestation(acme, node.peerId, 1, testQc('pass', Date.now() + 60_000))
  t.equal((await c.node(node.peerId))?.effective, 'certified')
  t.same((await c.nodes()).map(n => n.nodeId).sort(), [gv.peerId, node.peerId].sort())
  t.equal((await c.requestAttestation(node)).round, 2, 'next round')

  // empty blocks keep coming when idle
  const h0 = (await c.status()).height
  const empty = await committed(v, b => b.header.height > h0 && b.txs.length === 0)
  t.equal(v.producer.mempoolSize, 0, 'nothing pending')
  t.ok(empty.header.height > h0 && (await c.status()).height >= empty.header.height, 'empty blocks when idle')
})

t.test('a busy RPC port is a clear configuration error and releases the home', async t => {
  const home = await mkdtemp(join(tmpdir(), 'quorate-chain-port-'))
  t.teardown(async () => {
    await rm(home, { recursive: true, force: true })
  })
  await initChainHome({ home, chainId: 'port-test' })
  const { createServer } = await import('node:net')
  const blocker = createServer()
  await new Promise<void>(resolve => blocker.listen(0, '127.0.0.1', () => resolve()))
  t.teardown(() => {
    blocker.close()
  })
  const port = (blocker.address() as { port: number }).port
  await t.rejects(
    startEmbeddedValidator({ home, rpc: `127.0.0.1:${port}`, rules: createTestOnlyQuorumRules() }),
    /EADDRINUSE/
  )
  const v = await startEmbeddedValidator({ home, rules: createTestOnlyQuorumRules() })
  t.ok(v.url, 'the home can be used right after')
  await v.stop()
})
