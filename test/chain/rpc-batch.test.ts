// JSON-RPC 2.0 batches of broadcast_tx_sync at the embedded validator's RPC and
// ChainClient.broadcastTxBatch: many txs of several accounts in one call land in order and
// commit; a bad tx in a batch is refused alone; the envelope's limits hold; random batch
// envelopes never get a 500 and never stop the server.
import t from 'tap'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ChainClient, ChainRpcError, type BroadcastResult } from '../../chain/client.ts'
import { generateChainKey, type ChainKey } from '../../chain/keys.ts'
import { createTestOnlyQuorumRules } from '../../chain/testing.ts'
import { buildTx, decodeTx } from '../../chain/tx.ts'
import { TxCode } from '../../chain/types.ts'
import { initChainHome, startEmbeddedValidator } from '../../chain/validator.ts'
import { startRpcServer } from '../../chain/rpc.ts'
import { toBase64 } from '../../encoding/bytes.ts'

const CHAIN = 'rpc-batch'
const CID = 'bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy'
const home = await mkdtemp(join(tmpdir(), 'quorate-rpc-batch-'))
t.teardown(async () => {
  await rm(home, { recursive: true, force: true })
})
await initChainHome({ home, chainId: CHAIN })
const v = await startEmbeddedValidator({ home, rules: createTestOnlyQuorumRules(), blockIntervalMs: 0 })
const c = new ChainClient({ url: v.url })
t.teardown(async () => {
  c.close()
  await v.stop()
})

let n = 0
const publish = (k: ChainKey, seq: number): Uint8Array => {
  n++
  return buildTx(
    'image.publish',
    { name: `b${n}/app`, digest: 'sha256:' + n.toString(16).padStart(64, '0'), cid: CID, size: n },
    k,
    seq,
    CHAIN
  )
}
const isResult = (r: unknown): r is BroadcastResult => !(r instanceof Error)

// biome-ignore lint/suspicious/noExplicitAny: the answers are JSON of many shapes, read field by field
async function post(body: string): Promise<{ status: number; json: any }> {
  const res = await fetch(`${v.url}/`, { method: 'POST', body })
  const text = await res.text()
  return { status: res.status, json: text === '' ? undefined : JSON.parse(text) }
}

t.test('250 txs of 5 accounts, interleaved, in one call (3 POSTs): all admitted in order and committed', async t => {
  const keys = await Promise.all(Array.from({ length: 5 }, async () => await generateChainKey()))
  const txs: Uint8Array[] = []
  for (let s = 0; s < 50; s++) for (const k of keys) txs.push(publish(k, s))
  const rs = await c.broadcastTxBatch(txs)
  t.equal(rs.length, 250, 'one answer per tx')
  t.ok(
    rs.every(r => isResult(r) && r.code === 0),
    'every tx passed checkTx: each found its predecessor checked'
  )
  const last = rs[249]
  if (!isResult(last)) throw last
  let info = await c.tx(last.hash)
  while (info === undefined) {
    await c.waitForHeight((await c.status()).height + 1)
    info = await c.tx(last.hash)
  }
  t.equal(info.result.code, 0, 'the last one committed and applied')
  for (const k of keys) t.equal(await c.account(k.publicKey), 50, 'each account is at sequence 50')
})

t.test('a bad signature, a duplicate and garbage in one batch: each refused alone', async t => {
  const keys = await Promise.all(Array.from({ length: 3 }, async () => await generateChainKey()))
  const good = keys.map(k => publish(k, 0))
  const bad = publish(await generateChainKey(), 0)
  decodeTx(bad).sig[7] ^= 0x10
  const rs = await c.broadcastTxBatch([good[0], bad, good[1], good[1], new Uint8Array([1, 2, 3]), good[2]])
  t.equal(rs.length, 6)
  const codes = rs.map(r => (isResult(r) ? r.code : 'error'))
  t.same(codes, [0, TxCode.BAD_SIGNATURE, 0, 'error', TxCode.MALFORMED, 0])
  t.type(rs[3], ChainRpcError, 'the duplicate: the node answered an error for it alone')
  t.match((rs[3] as Error).message, /already exists/)
})

t.test('the envelope: over 100 requests or over the body limit refused whole, clearly', async t => {
  const k = await generateChainKey()
  const one = (i: number): Record<string, unknown> => ({
    jsonrpc: '2.0',
    id: i,
    method: 'broadcast_tx_sync',
    params: { tx: toBase64(publish(k, i)) }
  })
  const big = await post(JSON.stringify(Array.from({ length: 101 }, (_, i) => one(i))))
  t.equal(big.status, 400)
  t.equal(big.json.error.code, -32600)
  t.match(big.json.error.data, /1 to 100 requests/)
  t.equal(await c.account(k.publicKey), 0, 'nothing of it was admitted')
  const fat = await post(
    JSON.stringify([{ jsonrpc: '2.0', id: 1, method: 'broadcast_tx_sync', params: { tx: 'A'.repeat(300 * 1024) } }])
  )
  t.equal(fat.status, 413, 'a body over 256 KiB')
  // the client splits what the server would refuse
  const txs = Array.from({ length: 130 }, (_, i) => publish(k, i))
  const rs = await c.broadcastTxBatch(txs)
  t.ok(
    rs.every(r => isResult(r) && r.code === 0),
    '130 txs in two POSTs'
  )
})

t.test(
  "a node that allows fewer requests per batch (CometBFT's default is 10): the client learns its limit",
  async t => {
    const small = await startRpcServer({
      producer: v.producer,
      listen: '127.0.0.1:0',
      kick: () => {},
      limits: { maxBatch: 7 }
    })
    const sc = new ChainClient({ url: small.url })
    t.teardown(async () => {
      sc.close()
      await small.close()
    })
    const k = await generateChainKey()
    const txs = Array.from({ length: 30 }, (_, i) => publish(k, i))
    const rs = await sc.broadcastTxBatch(txs)
    t.equal(rs.length, 30)
    t.ok(
      rs.every(r => isResult(r) && r.code === 0),
      'all 30 admitted, in order, in batches of 7 after the first refusal'
    )
  }
)

t.test('fuzz: random batch envelopes get 200, 204 or 400 with JSON, never a 500; the server stays up', async t => {
  let seed = 0x2f6e2b1
  const rnd = (m: number): number => {
    seed ^= seed << 13
    seed ^= seed >>> 17
    seed ^= seed << 5
    return (seed >>> 0) % m
  }
  const k = await generateChainKey()
  const atoms: unknown[] = [
    null,
    0,
    -1,
    1.5,
    '',
    'x',
    true,
    [],
    {},
    { tx: 5 },
    'broadcast_tx_sync',
    toBase64(publish(k, 0)),
    '%%%'
  ]
  const value = (d: number): unknown => {
    const r = rnd(10)
    if (d > 2 || r < 6) return atoms[rnd(atoms.length)]
    if (r < 8) return Array.from({ length: rnd(4) }, () => value(d + 1))
    return Object.fromEntries(Array.from({ length: rnd(4) }, () => [String(atoms[rnd(atoms.length)]), value(d + 1)]))
  }
  const request = (): unknown => {
    if (rnd(5) === 0) return value(0)
    const r: Record<string, unknown> = {}
    if (rnd(6) !== 0) r.jsonrpc = rnd(8) === 0 ? value(1) : '2.0'
    if (rnd(3) !== 0) r.id = rnd(4) === 0 ? value(1) : rnd(1000)
    r.method = rnd(6) === 0 ? value(1) : ['broadcast_tx_sync', 'broadcast_tx_async', 'status', 'nope'][rnd(4)]
    if (rnd(4) !== 0)
      r.params = rnd(3) === 0 ? value(1) : { tx: rnd(2) === 0 ? toBase64(publish(k, rnd(3))) : value(2) }
    return r
  }
  const statuses = new Set<number>()
  for (let i = 0; i < 150; i++) {
    const body = JSON.stringify(Array.from({ length: 1 + rnd(12) }, request))
    const res = await post(body)
    statuses.add(res.status)
    if (![200, 204, 400].includes(res.status) || (res.status !== 204 && typeof res.json !== 'object')) {
      t.fail(`status ${res.status} for ${body.slice(0, 300)}`)
      return
    }
    if (res.status === 200) {
      const answers = res.json as Array<Record<string, unknown>>
      if (!Array.isArray(answers) || answers.some(a => a.jsonrpc !== '2.0' || 'result' in a === 'error' in a)) {
        t.fail(`bad answers for ${body.slice(0, 300)}`)
        return
      }
    }
  }
  t.ok(statuses.has(200), 'some batches were answered')
  t.equal((await c.status()).chainId, CHAIN, 'the server still answers')
})
