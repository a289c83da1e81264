// The light client against a real 4-validator CometBFT network (our ABCI app under each), honest
// and behind lying proxies: too few signatures, a forged validator set, a whole forged chain signed
// by validators genesis never named — all refused; an honest endpoint still answers.
import t from 'tap'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto'
import { ChainClient } from '../../chain/client.ts'
import { generateChainKey } from '../../chain/keys.ts'
import { buildTx } from '../../chain/tx.ts'
import { validatorAddress } from '../../chain/producer.ts'
import { fromHex, toBase64, toHex } from '../../encoding/bytes.ts'
import { LightClient, NoVerifiedAnswerError, type VerifiedValue } from '../../chain/light/index.ts'
import { headerHash, precommitSignBytes, validatorSetHash, type Validator } from '../../chain/light/cometbft.ts'
import { decodeSignedHeader, time } from '../../chain/light/rpc.ts'
import { startLocalNet } from './cometbft-net.ts'
import { clone, startLyingProxy, type Lie, type LyingProxy } from './light-proxy.ts'

const net = await startLocalNet(4, { chainId: 'light-cmt' })
const proxies: LyingProxy[] = []
const clients: LightClient[] = []
t.teardown(async () => {
  for (const c of clients) c.close()
  for (const p of proxies) await p.close()
  await net.stop()
})
const rpcs = net.net.validators.map(v => v.rpc)
const genesis = JSON.parse(
  await readFile(join(net.net.validators[0].home, 'config', 'genesis.json'), 'utf8')
) as Record<string, unknown>
const chain = new ChainClient({ url: rpcs[0] })
t.teardown(() => chain.close())
const written = await chain.broadcastTxCommit(
  buildTx('vendor.register', { name: 'acme' }, await generateChainKey(), 0, 'light-cmt')
)

async function proxy(lie?: Lie, upstream = rpcs[0]): Promise<LyingProxy> {
  const p = await startLyingProxy(upstream, lie)
  proxies.push(p)
  return p
}
function client(urls: string[]): LightClient {
  const lc = LightClient.create({ genesis, rpcs: urls, nextHeaderWaitMs: 30_000 })
  clients.push(lc)
  return lc
}
function isValue(v: unknown): asserts v is VerifiedValue {
  if (v === null || typeof v !== 'object' || !('value' in v))
    throw new Error(`not a verified value: ${JSON.stringify(v)}`)
}

type Json = Record<string, unknown>
const editCommit =
  (edit: (sh: { header: Json; commit: { signatures: Json[] } & Json }) => void): Lie =>
  (method, _p, result) => {
    if (method !== 'commit') return result
    const r = clone(result) as { signed_header: { header: Json; commit: { signatures: Json[] } & Json } }
    edit(r.signed_header)
    return r
  }
const absent = (s: Json): void => {
  s.block_id_flag = 1
  s.validator_address = ''
  s.timestamp = '0001-01-01T00:00:00Z'
  s.signature = null
}

t.test('genuine: headers from genesis and a value proven against them', async t => {
  t.equal(written.txResult.code, 0)
  const lc = client(rpcs)
  const h = await lc.verifiedHeader()
  t.equal(h.engine, 'cometbft')
  t.equal(h.validators.length, 4)
  t.ok(h.height >= written.height)
  const v = await lc.get('vendor/acme')
  isValue(v)
  t.ok(v.height >= written.height, 'proven in a state at or after the block that wrote it')
  t.equal(v.header.height, v.height + 1)
  t.equal((await lc.record<{ name: string }>('vendor/acme'))?.record.name, 'acme')
})

t.test('a commit signed by too few validators is refused', async t => {
  /** Keeps the first `n` precommit signatures, strips the rest. */
  const keep = (n: number): Lie =>
    editCommit(sh => {
      let k = 0
      for (const s of sh.commit.signatures) if (s.block_id_flag === 2 && k++ >= n) absent(s)
    })
  // 3 of 4 is more than 2/3: accepted (the control)
  const three = await proxy(keep(3))
  const ok = await client([three.url]).verifiedHeader()
  t.equal(ok.validators.length, 4, 'three signatures of four are enough')
  const two = await proxy(keep(2))
  await t.rejects(client([two.url]).verifiedHeader(), /signed by 2 of 4 voting power, not more than 2\/3/)
  // a signature moved to another validator's slot
  const swapped = await proxy(
    editCommit(sh => {
      const i = sh.commit.signatures.findIndex(s => s.block_id_flag === 2)
      const j = (i + 1) % sh.commit.signatures.length
      const [a, b] = [sh.commit.signatures[i], sh.commit.signatures[j]]
      sh.commit.signatures[i] = b
      sh.commit.signatures[j] = a
    })
  )
  await t.rejects(client([swapped.url]).verifiedHeader(), /names another validator|bad precommit|not more than 2\/3/)
})

t.test('a forged validator set is refused', async t => {
  const other = generateKeyPairSync('ed25519').publicKey.export({ format: 'jwk' }).x as string
  const forged = await proxy((method, _p, result) => {
    if (method !== 'validators') return result
    const r = clone(result) as { validators: Array<{ pub_key: { value: string } }> }
    r.validators[0].pub_key.value = Buffer.from(other, 'base64url').toString('base64')
    return r
  })
  await t.rejects(client([forged.url]).verifiedHeader(), /validator set of block \d+ does not hash to the header's/)
})

/**
 * A whole forged chain: every header from the real one, but with our app hash and a validator set
 * of four keys genesis never named, signed by them; `validators` answers with that set.
 */
function forgedChain(): Lie {
  const keys: Array<{ pub: Uint8Array; priv: KeyObject }> = Array.from({ length: 4 }, () => {
    const k = generateKeyPairSync('ed25519')
    const pub = new Uint8Array(Buffer.from(k.publicKey.export({ format: 'jwk' }).x as string, 'base64url'))
    return { pub, priv: k.privateKey }
  })
  const vals: Validator[] = keys
    .map(k => ({ address: validatorAddress(k.pub), publicKey: k.pub, power: 1 }))
    .sort((a, b) => Buffer.compare(a.address, b.address))
  const setHash = toHex(validatorSetHash(vals)).toUpperCase()
  return (method, _p, result) => {
    if (method === 'validators') {
      const r = clone(result) as Json
      r.validators = vals.map(v => ({
        address: toHex(v.address).toUpperCase(),
        pub_key: { type: 'tendermint/PubKeyEd25519', value: toBase64(v.publicKey) },
        voting_power: '1',
        proposer_priority: '0'
      }))
      r.count = '4'
      r.total = '4'
      return r
    }
    if (method !== 'commit') return result
    const r = clone(result) as { signed_header: { header: Json; commit: Json & { signatures: Json[] } } }
    const { header, commit } = r.signed_header
    header.validators_hash = setHash
    header.next_validators_hash = setHash
    header.app_hash = 'EE'.repeat(32)
    const sh = decodeSignedHeader(r)
    const hash = headerHash(sh.header)
    const blockId = { hash, parts: sh.commit.blockId.parts }
    ;(commit.block_id as Json).hash = toHex(hash).toUpperCase()
    commit.signatures = vals.map(v => {
      const ts = String(header.time)
      const msg = precommitSignBytes(String(header.chain_id), sh.header.height, sh.commit.round, blockId, time(ts, 't'))
      const k = keys.find(x => Buffer.from(x.pub).equals(Buffer.from(v.publicKey)))
      return {
        block_id_flag: 2,
        validator_address: toHex(v.address).toUpperCase(),
        timestamp: ts,
        signature: toBase64(sign(null, msg, k?.priv as KeyObject))
      }
    })
    return r
  }
}

t.test('a forged chain signed by validators genesis never named is refused', async t => {
  const forged = await proxy(forgedChain())
  // its headers are self-consistent: > 2/3 of their own set signed them ...
  const lc = client([forged.url])
  await t.rejects(lc.verifiedHeader(), /validators_hash of block \d+ is not the trusted header's next_validators_hash/)
  t.equal(lc.endpoints()[0].quarantined, true)
  // ... and with an honest endpoint beside it, the honest answer wins
  const honest = await proxy(undefined, rpcs[1])
  const both = client([forged.url, honest.url])
  const v = await both.get('vendor/acme')
  isValue(v)
  t.equal(v.endpoint, honest.url)
  t.not(toHex(v.header.appHash), 'ee'.repeat(32))
})

t.test('an altered value or forged proof from one endpoint: the answer comes from another', async t => {
  const liar = await proxy((method, _p, result) => {
    if (method !== 'abci_query') return result
    const r = clone(result) as { response: Json }
    r.response.value = toBase64(new TextEncoder().encode('forged'))
    return r
  })
  await t.rejects(client([liar.url]).get('vendor/acme'), NoVerifiedAnswerError)
  const forgedProof = await proxy((method, _p, result) => {
    if (method !== 'abci_query') return result
    const r = clone(result) as { response: { proofOps: { ops: Array<{ data: string }> } } }
    const d = Buffer.from(r.response.proofOps.ops[0].data, 'base64')
    d[d.length - 3] ^= 0x10
    r.response.proofOps.ops[0].data = d.toString('base64')
    return r
  })
  await t.rejects(client([forgedProof.url]).get('vendor/acme'), /does not verify against the app hash/)
  const lc = client([liar.url, rpcs[2]])
  const v = await lc.get('vendor/acme')
  isValue(v)
  t.equal(v.endpoint, rpcs[2])
  t.same(
    lc.endpoints().map(e => e.quarantined),
    [true, false]
  )
})

t.test('genesis validators hash to the first block’s validators_hash', async t => {
  const lc = client([rpcs[3]])
  const h1 = await lc.headerAt(1)
  t.equal(h1.height, 1)
  t.equal(toHex(validatorSetHash(lc.root.validators)), toHex(h1.header.validatorsHash))
  t.same(fromHex(toHex(h1.hash)), h1.hash)
})
