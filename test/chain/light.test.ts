// The light client against the real embedded validator (its HTTP RPC), honest and behind lying
// proxies: every altered answer is refused, an honest endpoint still answers.
import t from 'tap'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { initChainHome, startEmbeddedValidator, type EmbeddedValidator } from '../../chain/validator.ts'
import { createTestOnlyQuorumRules } from '../../chain/testing.ts'
import { ChainClient } from '../../chain/client.ts'
import { generateChainKey } from '../../chain/keys.ts'
import { buildTx } from '../../chain/tx.ts'
import { fromBase64, toBase64 } from '../../encoding/bytes.ts'
import {
  LightClient,
  NoVerifiedAnswerError,
  StaleHeaderError,
  type LightClientOptions,
  type VerifiedValue
} from '../../chain/light/index.ts'
import { clone, startLyingProxy, type LyingProxy } from './light-proxy.ts'

const CHAIN = 'light-embedded'

interface Setup {
  v: EmbeddedValidator
  genesis: Record<string, unknown>
  clock: { now: number }
  chain: ChainClient
  acmeHeight: number
  proxies: LyingProxy[]
}

async function setup(): Promise<Setup> {
  const home = await mkdtemp(join(tmpdir(), 'quorate-light-'))
  await initChainHome({ home, chainId: CHAIN })
  // the validator's clock and the light client's are one fake clock: header age is under the test's control
  const clock = { now: Date.now() }
  const v = await startEmbeddedValidator({
    home,
    rules: createTestOnlyQuorumRules(),
    blockIntervalMs: 0,
    // empty blocks often: a client that must wait for the next header waits less
    emptyBlockIntervalMs: 200,
    clock: () => clock.now
  })
  const chain = new ChainClient({ url: v.url })
  const k = await generateChainKey()
  const r = await chain.broadcastTxCommit(buildTx('vendor.register', { name: 'acme' }, k, 0, CHAIN))
  if (r.txResult.code !== 0) throw new Error(`vendor.register failed: ${r.txResult.log}`)
  const genesis = JSON.parse(await readFile(join(home, 'config', 'genesis.json'), 'utf8')) as Record<string, unknown>
  const s: Setup = { v, genesis, clock, chain, acmeHeight: r.height, proxies: [] }
  t.teardown(async () => {
    for (const p of s.proxies) await p.close()
    chain.close()
    await v.stop()
    await rm(home, { recursive: true, force: true })
  })
  return s
}

const s = await setup()

async function proxy(lie?: Parameters<typeof startLyingProxy>[1]): Promise<LyingProxy> {
  const p = await startLyingProxy(s.v.url, lie)
  s.proxies.push(p)
  return p
}
function client(rpcs: string[], opts: Partial<LightClientOptions> = {}): LightClient {
  const lc = LightClient.create({ genesis: s.genesis, rpcs, now: () => s.clock.now, nextHeaderWaitMs: 30_000, ...opts })
  t.teardown(() => lc.close())
  return lc
}
function isValue(_t: unknown, v: unknown): asserts v is VerifiedValue {
  if (v === null || typeof v !== 'object' || !('value' in v))
    throw new Error(`not a verified value: ${JSON.stringify(v)}`)
}

/** Waits until the chain has a block above `height` (the validator makes an empty block each second). */
async function blockAfter(height: number): Promise<number> {
  for (;;) {
    const h = (await s.chain.status()).height
    if (h > height) return h
    await new Promise<void>(resolve => {
      const off = s.v.producer.onCommit(() => {
        off()
        resolve()
      })
    })
  }
}

const queryLie =
  (edit: (response: Record<string, unknown>) => void) =>
  (method: string, _p: unknown, result: unknown): unknown => {
    if (method !== 'abci_query') return result
    const r = clone(result) as { response: Record<string, unknown> }
    edit(r.response)
    return r
  }

t.test('genuine answers: a header and a value, verified', async t => {
  const honest = await proxy()
  const lc = client([honest.url])
  const h = await lc.verifiedHeader()
  t.equal(h.engine, 'embedded')
  t.equal(h.chainId, CHAIN)
  t.ok(h.height >= s.acmeHeight, 'the newest header')
  const v = await lc.get('vendor/acme')
  isValue(t, v)
  t.ok(v.height >= s.acmeHeight, 'proven in a state at or after the block that wrote it')
  t.equal(v.header.height, v.height + 1, 'the header that commits the state after block H is H + 1')
  const rec = await lc.record<{ name: string }>('vendor/acme')
  t.equal(rec?.record.name, 'acme', 'decoded with the chain canonical decoding')
  // the cached header serves the next query: no new commit fetched while the state is unchanged
  const commits = honest.calls.get('commit') ?? 0
  await lc.get('vendor/acme')
  t.equal(honest.calls.get('commit') ?? 0, commits, 'the verified header is reused from the cache')
})

t.test('the value written in block H is proven against header H + 1', async t => {
  const k = await generateChainKey()
  const r = await s.chain.broadcastTxCommit(buildTx('vendor.register', { name: 'newco' }, k, 0, CHAIN))
  t.equal(r.txResult.code, 0)
  const lc = client([s.v.url])
  const v = await lc.get('vendor/newco')
  isValue(t, v)
  t.ok(v.height >= r.height, `proven after block ${r.height} (got ${v.height})`)
  t.equal(v.header.height, v.height + 1)
})

t.test('an altered value is refused', async t => {
  const liar = await proxy(
    queryLie(r => {
      r.value = toBase64(new TextEncoder().encode('forged'))
    })
  )
  const lc = client([liar.url])
  await t.rejects(lc.get('vendor/acme'), NoVerifiedAnswerError)
  const [ep] = lc.endpoints()
  t.equal(ep.quarantined, true, 'the lying endpoint is quarantined')
  t.match(ep.reason, /does not verify/)
  await t.rejects(lc.get('vendor/acme'), /quarantined|no RPC endpoint/, 'and not asked again while quarantined')
})

t.test('a forged proof is refused; so is a missing one', async t => {
  const forged = await proxy(
    queryLie(r => {
      const ops = r.proofOps as { ops: Array<{ data: string }> }
      const d = fromBase64(ops.ops[0].data)
      d[d.length - 5] ^= 1
      ops.ops[0].data = toBase64(d)
    })
  )
  await t.rejects(client([forged.url]).get('vendor/acme'), NoVerifiedAnswerError)
  const none = await proxy(
    queryLie(r => {
      r.proofOps = null
    })
  )
  await t.rejects(client([none.url]).get('vendor/acme'), /carries no quorate:bucket-merkle/)
  const otherKey = await proxy(
    queryLie(r => {
      r.key = toBase64(new TextEncoder().encode('vendor/other'))
    })
  )
  await t.rejects(client([otherKey.url]).get('vendor/acme'), /another key/)
})

t.test('a forged header is refused: altered app hash, bad signature, another chain', async t => {
  const commitLie = (edit: (sh: { header: Record<string, unknown>; commit: Record<string, unknown> }) => void) =>
    proxy((method, _p, result) => {
      if (method !== 'commit') return result
      const r = clone(result) as { signed_header: { header: Record<string, unknown>; commit: Record<string, unknown> } }
      edit(r.signed_header)
      return r
    })
  const appHash = await commitLie(sh => {
    sh.header.app_hash = 'AB'.repeat(32)
  })
  await t.rejects(client([appHash.url]).verifiedHeader(), /block hash of the header fields differs/)
  const sig = await commitLie(sh => {
    const sigs = sh.commit.signatures as Array<{ signature: string }>
    const b = fromBase64(sigs[0].signature)
    b[0] ^= 1
    sigs[0].signature = toBase64(b)
  })
  await t.rejects(client([sig.url]).verifiedHeader(), /bad validator signature/)
  const chain = await commitLie(sh => {
    sh.header.chain_id = 'another-chain'
  })
  await t.rejects(client([chain.url]).verifiedHeader(), /header is for chain "another-chain"/)
  // a forged header cannot vouch for a forged value either
  const both = await proxy((method, _p, result) => {
    if (method === 'abci_query') {
      const r = clone(result) as { response: Record<string, unknown> }
      r.response.value = toBase64(new TextEncoder().encode('forged'))
      return r
    }
    if (method === 'commit') {
      const r = clone(result) as { signed_header: { header: Record<string, unknown> } }
      r.signed_header.header.app_hash = 'CD'.repeat(32)
      return r
    }
    return result
  })
  await t.rejects(client([both.url]).get('vendor/acme'), NoVerifiedAnswerError)
})

t.test('a stale header (an endpoint replaying an old commit) is refused', async t => {
  const old = await s.chain.call('commit', { height: '1' })
  s.clock.now += 120_000
  const now = await blockAfter((await s.chain.status()).height)
  const replay = await proxy((method, _p, result) => (method === 'commit' ? old : result))
  await t.rejects(client([replay.url]).verifiedHeader(), StaleHeaderError)
  const h = await client([replay.url, s.v.url]).verifiedHeader()
  t.ok(h.height >= now, 'the honest endpoint answers with a fresh header')
  t.ok(s.clock.now - h.time <= 60_000, 'and it is fresh')
})

t.test('two endpoints, one lies: the answer comes from the honest one', async t => {
  const liar = await proxy(
    queryLie(r => {
      r.value = toBase64(new TextEncoder().encode('forged'))
    })
  )
  const honest = await proxy()
  const lc = client([liar.url, honest.url])
  const v = await lc.get('vendor/acme')
  isValue(t, v)
  t.equal(v.endpoint, honest.url)
  t.equal((await lc.record<{ name: string }>('vendor/acme'))?.record.name, 'acme')
  const eps = lc.endpoints()
  t.same(
    eps.map(e => e.quarantined),
    [true, false],
    'the liar is quarantined, the honest endpoint is not'
  )
})

t.test('absence is reported as unproven, and a hidden value is still found', async t => {
  const lc = client([s.v.url])
  const a = await lc.get('vendor/nobody')
  t.same(a, { key: 'vendor/nobody', endpoints: [s.v.url] }, 'Absent names the endpoints that said not found')
  t.equal(await lc.node('12D3KooWnobody'), undefined)
  const hider = await proxy(
    queryLie(r => {
      r.code = 8
      r.value = null
      r.proofOps = null
    })
  )
  const v = await client([hider.url, s.v.url]).get('vendor/acme')
  isValue(t, v)
  t.equal(v.endpoint, s.v.url, 'one endpoint hiding a value does not hide it')
})

t.test('parallel reads of a fresh client share one fetch of the newest header', async t => {
  // two blocks without txs: the newest header commits the state
  await blockAfter(await blockAfter((await s.chain.status()).height))
  const p = await proxy()
  const lc = client([p.url])
  const vs = await Promise.all(['vendor/acme', 'vendor/newco', 'vendor/acme', 'vendor/newco'].map(k => lc.get(k)))
  t.equal(vs.filter(v => 'value' in v).length, 4, 'every read verified')
  t.equal(p.calls.get('commit'), 1, 'one commit fetched for four reads')
})

t.test('bad input and no endpoints are refused', async t => {
  t.throws(() => LightClient.create({ genesis: s.genesis, rpcs: [] }), /at least one RPC endpoint/)
  t.throws(() => LightClient.create({ genesis: { chain_id: 'x' }, rpcs: [s.v.url] }), /validator/)
  await t.rejects(client([s.v.url]).get('bad key with spaces'), /printable ASCII/)
  await t.rejects(client(['http://127.0.0.1:1']).verifiedHeader(), NoVerifiedAnswerError)
})
