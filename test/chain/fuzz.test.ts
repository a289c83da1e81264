// Bounded fuzzing of the chain's external inputs: tx bytes (random and mutated valid txs) into
// checkTx and finalizeBlock, query data, and RPC request bodies. Nothing may throw or hang, and a
// block of garbage changes nothing but the signers' accounts of txs that really are valid.
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { makeChain, fakeDer } from './harness.ts'
import { generateChainKey } from '../../chain/keys.ts'
import { buildTx } from '../../chain/tx.ts'
import { initChainHome, startEmbeddedValidator } from '../../chain/validator.ts'
import { createTestOnlyQuorumRules } from '../../chain/testing.ts'
import { encode } from '../../encoding/canonical.ts'

function mutate (b: Uint8Array, rnd: () => number): Uint8Array {
  const out = new Uint8Array(b)
  const kind = Math.floor(rnd() * 4)
  if (kind === 0) { out[Math.floor(rnd() * out.length)] ^= 1 << Math.floor(rnd() * 8); return out }
  if (kind === 1) return out.slice(0, Math.floor(rnd() * out.length))
  if (kind === 2) { const i = Math.floor(rnd() * out.length); return new Uint8Array([...out.slice(0, i), Math.floor(rnd() * 256), ...out.slice(i)]) }
  out[Math.floor(rnd() * out.length)] = Math.floor(rnd() * 256)
  return out
}

t.test('tx bytes: random and mutated', async t => {
  const h = await makeChain()
  const k = await generateChainKey()
  const node = await generateChainKey()
  const valid = [
    buildTx('vendor.register', { name: 'acme' }, k, 0, h.genesis.chainId),
    buildTx('firmware.publish', { vendor: 'acme', platform: 'p', version: '1', bank: 'sha256', pcrs: { 0: { golden: [new Uint8Array(32)], events: [new Uint8Array(32)] } } }, k, 1, h.genesis.chainId),
    buildTx('node.register', { nodeId: node.peerId, ekCertificate: fakeDer(1), akPublic: new Uint8Array(10), addrs: ['/ip4/127.0.0.1/tcp/1'], platform: 'acme/p', os: 'nixos' }, node, 0, h.genesis.chainId),
    buildTx('attest.record', { nodeId: node.peerId, round: 1, qc: encode({ outcome: 'pass', expiresAt: 1 }) }, node, 1, h.genesis.chainId)
  ]
  let seed = 12345
  const rnd = (): number => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed / 0x80000000 }
  const inputs: Uint8Array[] = []
  for (let i = 0; i < 1500; i++) inputs.push(mutate(valid[i % valid.length], rnd))
  for (let i = 0; i < 300; i++) inputs.push(new Uint8Array(randomBytes(Math.floor(rnd() * 600))))
  let threw = 0
  let accepted = 0
  for (const b of inputs) {
    try { if (h.app.checkTx(b).code === 0) accepted++ } catch { threw++ }
  }
  t.equal(threw, 0, 'checkTx never throws')
  const before = h.app.info().appHash
  h.clock.now += 1000
  let r
  try {
    r = h.app.finalizeBlock({ height: h.app.info().height + 1, time: h.clock.now, hash: new Uint8Array(32), txs: inputs.slice(0, 600) })
    h.app.commit()
  } catch (err) { t.fail(`finalizeBlock threw: ${(err as Error).message}`) }
  const ok = r?.txResults.filter(x => x.code === 0).length ?? 0
  t.ok(r !== undefined && r.txResults.every(x => x.log.length < 2000), 'every result has a bounded message')
  if (ok === 0) t.same(h.app.info().appHash, before, 'nothing valid, nothing changed')
  else t.pass(`${ok} mutated txs were still valid (signature covers only the payload, outer re-encodings are refused)`)
  t.ok(accepted <= inputs.length)
})

t.test('query data and RPC bodies', async t => {
  const h = await makeChain()
  let threw = 0
  for (let i = 0; i < 300; i++) {
    for (const path of ['/vendor', '/refs', '/node', '/seed', '/image', '/key', '/account', '/nodes']) {
      try { h.app.query({ path, data: new Uint8Array(randomBytes(i % 40)) }) } catch { threw++ }
    }
  }
  t.equal(threw, 0, 'queries never throw on garbage')
  const home = await mkdtemp(join(tmpdir(), 'quorate-fuzz-'))
  t.teardown(async () => { await rm(home, { recursive: true, force: true }) })
  await initChainHome({ home, chainId: 'fuzz' })
  const v = await startEmbeddedValidator({ home, rules: createTestOnlyQuorumRules(), blockIntervalMs: 0 })
  t.teardown(async () => { await v.stop() })
  const bodies = ['', '{', 'null', '[]', '{"method":1}', '{"jsonrpc":"2.0","id":1,"method":"broadcast_tx_sync","params":{"tx":"!!"}}',
    '{"jsonrpc":"2.0","id":1,"method":"abci_query","params":{"path":"/vendor","data":"zz"}}', '{"jsonrpc":"2.0","id":1,"method":"block","params":{"height":"-1"}}',
    '{"jsonrpc":"2.0","id":1,"method":"tx","params":{"hash":42}}', '{"jsonrpc":"2.0","id":1,"method":"broadcast_tx_commit","params":{"tx":"' + Buffer.from(randomBytes(50)).toString('base64') + '"}}']
  let answered = 0
  for (const b of bodies) {
    const res = await fetch(v.url, { method: 'POST', body: b })
    const j = await res.json() as { error?: unknown, result?: unknown }
    if (j.error !== undefined || j.result !== undefined) answered++
  }
  t.equal(answered, bodies.length, 'every malformed request gets a JSON-RPC answer')
  const s = await (await fetch(`${v.url}/status`)).json() as { result: unknown }
  t.ok(s.result !== undefined, 'server still serves')
})
