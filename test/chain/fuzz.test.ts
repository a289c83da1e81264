// Bounded fuzzing of the chain's external inputs: tx bytes (random and mutated valid txs) into
// checkTx and finalizeBlock, query data, and RPC request bodies. Nothing may throw or hang, and a
// block of garbage changes nothing but what its unchanged valid txs change. Every random byte
// comes from one seeded generator, so a failure reproduces.
import t from 'tap'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { makeChain, fakeDer, T0 } from './harness.ts'
import { generateKeyPairFromSeed, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import { chainKeyFromProtobuf, type ChainKey } from '../../chain/keys.ts'
import { buildTx } from '../../chain/tx.ts'
import { initChainHome, startEmbeddedValidator } from '../../chain/validator.ts'
import { createTestOnlyQuorumRules } from '../../chain/testing.ts'
import { encode } from '../../encoding/canonical.ts'

function mutate(b: Uint8Array, rnd: () => number): Uint8Array {
  const out = new Uint8Array(b)
  const kind = Math.floor(rnd() * 4)
  if (kind === 0) {
    out[Math.floor(rnd() * out.length)] ^= 1 << Math.floor(rnd() * 8)
    return out
  }
  if (kind === 1) return out.slice(0, Math.floor(rnd() * out.length))
  if (kind === 2) {
    const i = Math.floor(rnd() * out.length)
    return new Uint8Array([...out.slice(0, i), Math.floor(rnd() * 256), ...out.slice(i)])
  }
  out[Math.floor(rnd() * out.length)] = Math.floor(rnd() * 256)
  return out
}

/** The one source of randomness here: a seeded LCG, so every run fuzzes the same inputs. */
function seeded(seed: number): { rnd: () => number; bytes: (n: number) => Uint8Array } {
  const rnd = (): number => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff
    return seed / 0x80000000
  }
  return { rnd, bytes: n => Uint8Array.from({ length: n }, () => Math.floor(rnd() * 256)) }
}

async function seededKey(i: number): Promise<ChainKey> {
  const seed = new Uint8Array(32).fill(i)
  return chainKeyFromProtobuf(privateKeyToProtobuf(await generateKeyPairFromSeed('Ed25519', seed)))
}

const same = (a: Uint8Array, b: Uint8Array): boolean => a.byteLength === b.byteLength && a.every((x, i) => x === b[i])

t.test('tx bytes: random and mutated', async t => {
  const h = await makeChain()
  t.teardown(() => {
    h.app.close()
  })
  // fixed keys: the signatures, hence the inputs, are the same in every run
  const k = await seededKey(1)
  const node = await seededKey(2)
  const valid = [
    { tx: buildTx('vendor.register', { name: 'acme' }, k, 0, h.genesis.chainId), signer: 'k', seq: 0 },
    {
      tx: buildTx(
        'firmware.publish',
        {
          vendor: 'acme',
          platform: 'p',
          version: '1',
          bank: 'sha256',
          pcrs: { 0: { golden: [new Uint8Array(32)], events: [new Uint8Array(32)] } }
        },
        k,
        1,
        h.genesis.chainId
      ),
      signer: 'k',
      seq: 1
    },
    {
      tx: buildTx(
        'node.register',
        {
          nodeId: node.peerId,
          ekCertificate: fakeDer(1),
          akPublic: new Uint8Array(10),
          addrs: ['/ip4/127.0.0.1/tcp/1'],
          platform: 'acme/p',
          os: 'nixos'
        },
        node,
        0,
        h.genesis.chainId
      ),
      signer: 'node',
      seq: 0
    },
    {
      tx: buildTx('attest.request', { nodeId: node.peerId, round: 1 }, node, 1, h.genesis.chainId),
      signer: 'node',
      seq: 1
    }
  ]
  const { rnd, bytes } = seeded(12345)
  const inputs: Uint8Array[] = []
  for (let i = 0; i < 1500; i++) inputs.push(mutate(valid[i % valid.length].tx, rnd))
  for (let i = 0; i < 300; i++) inputs.push(bytes(Math.floor(rnd() * 600)))
  // a mutation may leave the bytes as they were (a byte overwritten with its own value): such an
  // input is the valid tx itself. Nothing else is valid: the signature covers the payload, and
  // the canonical encoding admits one encoding of each tx.
  const original = inputs.map(b => valid.find(v => same(v.tx, b)))
  t.ok(
    original.some(o => o !== undefined) && original.some(o => o === undefined),
    'the inputs hold both unchanged and changed txs'
  )

  // checkTx accepts exactly the unchanged valid txs whose sequence is next for their signer
  const next = new Map<string, number>()
  let threw = 0
  let wrong = 0
  for (const [i, b] of inputs.entries()) {
    const o = original[i]
    const expected = o !== undefined && (next.get(o.signer) ?? 0) === o.seq
    if (expected && o !== undefined) next.set(o.signer, o.seq + 1)
    let code: number
    try {
      code = h.app.checkTx(b).code
    } catch {
      threw++
      continue
    }
    if ((code === 0) !== expected) wrong++
  }
  t.equal(threw, 0, 'checkTx never throws')
  t.equal(wrong, 0, 'checkTx accepts exactly the unchanged valid txs, in sequence')

  // a block of 600 inputs with the valid txs among them leaves the state exactly as a block of
  // just its unchanged txs does
  const block = [
    valid[0].tx,
    ...inputs.slice(0, 200),
    valid[1].tx,
    valid[2].tx,
    ...inputs.slice(200, 400),
    valid[3].tx,
    ...inputs.slice(1500, 1700)
  ]
  const blockOriginal = block.map(b => valid.find(v => same(v.tx, b)))
  const clean = block.filter((_, i) => blockOriginal[i] !== undefined)
  const twin = await makeChain({ genesis: h.genesis, validator: h.validator })
  t.teardown(() => {
    twin.app.close()
  })
  t.same(twin.app.info().appHash, h.app.info().appHash, 'two chains from one genesis')
  const req = (c: typeof h): { height: number; time: number; hash: Uint8Array } => ({
    height: c.app.info().height + 1,
    time: T0 + 5000,
    hash: new Uint8Array(32)
  })
  let r: ReturnType<typeof h.app.finalizeBlock> | undefined, rc: ReturnType<typeof twin.app.finalizeBlock> | undefined
  try {
    r = h.app.finalizeBlock({ ...req(h), txs: block })
    h.app.commit()
    rc = twin.app.finalizeBlock({ ...req(twin), txs: clean })
    twin.app.commit()
  } catch (err) {
    t.fail(`finalizeBlock threw: ${(err as Error).message}`)
  }
  t.ok(r !== undefined && r.txResults.every(x => x.log.length < 2000), 'every result has a bounded message')
  const results = r?.txResults ?? []
  t.ok(
    results.every((x, i) => blockOriginal[i] !== undefined || x.code !== 0),
    'every changed tx is refused'
  )
  t.same(
    results.filter((_, i) => blockOriginal[i] !== undefined).map(x => x.code),
    rc?.txResults.map(x => x.code),
    'the unchanged ones get the results they get alone'
  )
  t.ok(
    (rc?.txResults ?? []).some(x => x.code === 0),
    'some of them apply'
  )
  t.same(
    h.app.info().appHash,
    twin.app.info().appHash,
    'the refused inputs changed nothing: same app hash as the clean block'
  )
})

t.test('query data and RPC bodies', async t => {
  const h = await makeChain()
  t.teardown(() => {
    h.app.close()
  })
  const { bytes } = seeded(777)
  let threw = 0
  for (let i = 0; i < 300; i++) {
    for (const path of ['/vendor', '/refs', '/node', '/seed', '/image', '/key', '/account', '/nodes']) {
      try {
        h.app.query({ path, data: bytes(i % 40) })
      } catch {
        threw++
      }
    }
  }
  t.equal(threw, 0, 'queries never throw on garbage')
  const home = await mkdtemp(join(tmpdir(), 'quorate-fuzz-'))
  t.teardown(async () => {
    await rm(home, { recursive: true, force: true })
  })
  await initChainHome({ home, chainId: 'fuzz' })
  const v = await startEmbeddedValidator({ home, rules: createTestOnlyQuorumRules(), blockIntervalMs: 0 })
  t.teardown(async () => {
    await v.stop()
  })
  const rpc = (method: string, params: string): string =>
    `{"jsonrpc":"2.0","id":1,"method":"${method}","params":${params}}`
  // each body and the JSON-RPC error code it must get (or 0: a result)
  const bodies: Array<[string, number]> = [
    ['', -32700],
    ['{', -32700],
    ['null', -32600],
    ['[]', -32600],
    ['{"method":1}', -32600],
    [rpc('broadcast_tx_sync', '{"tx":"!!"}'), -32602],
    [rpc('abci_query', '{"path":"/vendor","data":"zz"}'), -32602],
    [rpc('block', '{"height":"-1"}'), -32602],
    [rpc('tx', '{"hash":42}'), -32602],
    [rpc('broadcast_tx_commit', `{"tx":"${Buffer.from(bytes(50)).toString('base64')}"}`), 0]
  ]
  for (const [body, code] of bodies) {
    const res = await fetch(v.url, { method: 'POST', body })
    const j = (await res.json()) as { error?: { code: number }; result?: { check_tx?: { code: number } } }
    if (code === 0) t.equal(j.result?.check_tx?.code, 1, `${body.slice(0, 60)}: checked and refused as malformed`)
    else t.equal(j.error?.code, code, `${body.slice(0, 60)}: error ${code}`)
  }
  const s = (await (await fetch(`${v.url}/status`)).json()) as { result: unknown }
  t.ok(s.result !== undefined, 'server still serves')
  let included = 0
  for (let height = 1; height <= v.app.info().height; height++)
    included += v.producer.store.block(height)?.txs.length ?? 0
  t.equal(included, 0, 'no garbage reached a block')
})

t.test('app, usage, endpoint and tlsKey bodies: mutated fields and bytes', async t => {
  const { parseBody } = await import('../../chain/bodies.ts')
  const { decode } = await import('../../encoding/canonical.ts')
  const { InvalidInputError } = await import('../../encoding/errors.ts')
  const node = await seededKey(3)
  const bodies: Array<[Parameters<typeof parseBody>[0], Record<string, unknown>]> = [
    [
      'app.publish',
      {
        name: 'hello',
        version: '1.0',
        digest: `sha256:${'ab'.repeat(32)}`,
        cid: 'bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy',
        size: 1024,
        port: 8080,
        args: ['-p', '8080'],
        env: ['A=1'],
        healthPath: '/',
        limits: { memoryBytes: 64 << 20, pids: 16, nanoCpus: 1e9 },
        idleTimeoutMs: 60_000
      }
    ],
    ['app.revoke', { name: 'hello', version: '1.0' }],
    [
      'usage.record',
      { nodeId: node.peerId, from: 1, to: 2, apps: [{ app: 'hello', requests: 1, bytesIn: 2, bytesOut: 3 }] }
    ],
    [
      'node.register',
      {
        nodeId: node.peerId,
        ekCertificate: fakeDer(1),
        akPublic: new Uint8Array(4),
        addrs: [],
        endpoint: 'http://127.0.0.1:8080'
      }
    ],
    ['attest.request', { nodeId: node.peerId, round: 1, tlsKey: new Uint8Array(32) }]
  ]
  const { rnd, bytes } = seeded(777)
  // values a field may be replaced with: wrong types, edge numbers, near-miss strings
  const odd = (): unknown => {
    const pick = [
      () => -1,
      () => 0,
      () => 65_536,
      () => Number.MAX_SAFE_INTEGER,
      () => '',
      () => 'A',
      () => 'http://198.18.0.1',
      () => 'https://x/?q',
      () => `/${'a'.repeat(300)}`,
      () => bytes(Math.floor(rnd() * 40)),
      () => [],
      () => Array.from({ length: 70 }, () => 'x'),
      () => ({}),
      () => true,
      () => [
        { app: 'hello', requests: 1, bytesIn: 1, bytesOut: 1 },
        { app: 'hello', requests: 1, bytesIn: 1, bytesOut: 1 }
      ]
    ]
    return pick[Math.floor(rnd() * pick.length)]()
  }
  let other = 0
  let accepted = 0
  let refusedCount = 0
  let notIdempotent = 0
  for (let i = 0; i < 3000; i++) {
    const [type, valid] = bodies[i % bodies.length]
    const b: Record<string, unknown> = structuredClone(valid)
    const keys = Object.keys(b)
    const k = keys[Math.floor(rnd() * keys.length)]
    const how = Math.floor(rnd() * 4)
    if (how === 0) delete b[k]
    else if (how === 1) b[k] = odd()
    else if (how === 2) b[`x${Math.floor(rnd() * 10)}`] = 1
    let input: unknown = b
    if (how === 3) {
      // byte-level: mutate the canonical encoding, keep what still decodes
      try {
        input = decode(mutate(encode(b as never), rnd))
      } catch {
        continue
      }
    }
    try {
      const out = parseBody(type, input as never)
      accepted++
      // whatever is accepted parses to itself again and keeps the rules
      if (JSON.stringify(parseBody(type, out as never)) !== JSON.stringify(out)) notIdempotent++
      if (type === 'node.register') {
        const e = (out as { endpoint?: string }).endpoint
        if (e?.startsWith('http:') === true && !/^http:\/\/(127\.|\[::1\]|localhost)/.test(e))
          t.fail(`plain http endpoint off loopback accepted: ${e}`)
      }
    } catch (err) {
      if (err instanceof InvalidInputError) refusedCount++
      else other++
    }
  }
  t.equal(other, 0, 'a bad body only ever throws InvalidInputError')
  t.equal(notIdempotent, 0, 'an accepted body parses to itself again')
  t.ok(accepted > 0 && refusedCount > 1000, `both outcomes occur (${accepted} accepted, ${refusedCount} refused)`)
})
