// checkTx with the signature checked in libuv's thread pool (BlockProducer.submitAsync,
// chain/verify-pool.ts): arrival order is the mempool order whatever order the checks finish in,
// a bad signature is refused alone with the same answer as the synchronous path, the queue is
// bounded, and the chain's state comes out byte for byte as with submit.
import t from 'tap'
import { equal } from '../../encoding/bytes.ts'
import { generateChainKey, type ChainKey } from '../../chain/keys.ts'
import { MempoolError } from '../../chain/producer.ts'
import { decodeTx } from '../../chain/tx.ts'
import { TxCode } from '../../chain/types.ts'
import { verifyTxSignatureAsync } from '../../chain/verify-pool.ts'
import { makeChain, type Harness } from './harness.ts'

const CID = 'bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy'
const publish = (h: Harness, key: ChainKey, n: number): Uint8Array =>
  h.tx(
    'image.publish',
    { name: `t${n}/app`, digest: 'sha256:' + n.toString(16).padStart(64, '0'), cid: CID, size: n },
    key
  )
const tamper = (tx: Uint8Array): Uint8Array => {
  const b = tx.slice()
  decodeTx(b).sig[0] ^= 1 // the signature is a view into b: one bit of it flipped
  return b
}

t.test('verifyTxSignatureAsync: true for a good signature, false for a bad one or a bad key', async t => {
  const h = await makeChain()
  const k = await generateChainKey()
  const good = publish(h, k, 1)
  t.equal(await verifyTxSignatureAsync(decodeTx(good)), true)
  t.equal(await verifyTxSignatureAsync(decodeTx(tamper(good))), false, 'one flipped bit of the signature')
  const d = decodeTx(good)
  t.equal(await verifyTxSignatureAsync({ ...d, signer: new Uint8Array(32).fill(0xff) }), false, 'another key')
  t.equal(await verifyTxSignatureAsync({ ...d, sig: d.sig.subarray(0, 63) }), false, 'a short signature')
})

t.test('one account, 60 txs at once: all admitted, in arrival order', async t => {
  const h = await makeChain()
  const k = await generateChainKey()
  const txs = Array.from({ length: 60 }, (_, i) => publish(h, k, i))
  const results = await Promise.all(txs.map(async tx => await h.producer.submitAsync(tx)))
  t.same(
    results.map(r => r.result.code),
    txs.map(() => 0),
    'each seq found its predecessor already checked'
  )
  t.equal(h.producer.verifyingSize, 0)
  const b = h.producer.produce()
  t.equal(b.txs.length, 60)
  t.ok(
    b.txs.every((tx, i) => tx === txs[i]),
    'the block holds them in the order they were submitted'
  )
  t.ok(
    b.results.every(r => r.code === 0),
    'and they all apply'
  )
})

t.test(
  'a bad signature in a batch is refused alone, with the synchronous answer; the state is as with submit',
  async t => {
    const build = async (h: Harness, keys: ChainKey[]): Promise<Uint8Array[]> => {
      const txs: Uint8Array[] = []
      for (let i = 0; i < 12; i++) txs.push(publish(h, keys[i % 4], i))
      txs[5] = tamper(txs[5]) // keys[1]'s second tx: its third (index 9) then has a gap
      txs.splice(7, 0, new Uint8Array([0xa1, 0x00])) // not a tx at all
      return txs
    }
    const keys = await Promise.all(Array.from({ length: 4 }, async () => await generateChainKey()))
    const validator = await generateChainKey()
    const a = await makeChain({ validator })
    const b = await makeChain({ validator })
    const txsA = await build(a, keys)
    const txsB = txsA.map(x => x.slice()) // the same bytes, other arrays (no shared verification cache)
    const viaPool = await Promise.all(txsA.map(async tx => (await a.producer.submitAsync(tx)).result))
    const viaSync = txsB.map(tx => b.producer.submit(tx).result)
    t.same(viaPool, viaSync, 'every answer (code and log) as the synchronous checkTx gives it')
    t.equal(viaPool[5].code, TxCode.BAD_SIGNATURE, 'the tampered tx')
    t.match(viaPool[5].log, /bad signature/)
    t.equal(viaPool[7].code, TxCode.MALFORMED, 'the garbage')
    t.equal(viaPool[10].code, TxCode.BAD_SEQUENCE, "the tampered account's next tx has a gap")
    t.equal(viaPool.filter(r => r.code === 0).length, 10, 'everything else is admitted')
    a.clock.now += 1000
    b.clock.now += 1000
    const ba = a.producer.produce()
    const bb = b.producer.produce()
    t.equal(ba.txs.length, 10)
    t.ok(equal(ba.appHash, bb.appHash), 'the same app hash')
    t.ok(equal(ba.hash, bb.hash), 'the same block')
  }
)

t.test('bounded: more than maxVerifying waiting is refused; duplicates are refused', async t => {
  const h = await makeChain()
  const { BlockProducer } = await import('../../chain/producer.ts')
  // a second producer over the same app, with a small queue (it only admits; nothing is produced)
  const p = new BlockProducer({ app: h.app, key: h.validator, maxVerifying: 2 })
  const k = await generateChainKey()
  const txs = Array.from({ length: 3 }, (_, i) => publish(h, k, i))
  const first = p.submitAsync(txs[0])
  const second = p.submitAsync(txs[1])
  await t.rejects(p.submitAsync(txs[2]), MempoolError, 'the third waits for no check: refused')
  t.equal((await first).result.code, 0)
  t.equal((await second).result.code, 0)
  await t.rejects(p.submitAsync(txs[0]), MempoolError, 'already in the mempool')
  t.equal((await p.submitAsync(txs[2])).result.code, 0, 'room again once the checks are done')
  t.equal(p.mempoolSize, 3)
})

t.test('a tx submitted twice while its first check runs: the second is refused, the first admitted', async t => {
  const h = await makeChain()
  const k = await generateChainKey()
  const tx = publish(h, k, 0)
  const [one, two] = await Promise.allSettled([h.producer.submitAsync(tx), h.producer.submitAsync(tx)])
  t.equal(one.status === 'fulfilled' && one.value.result.code, 0)
  t.equal(two.status, 'rejected')
  t.type(two.status === 'rejected' ? two.reason : undefined, MempoolError)
  t.equal(h.producer.mempoolSize, 1)
})
