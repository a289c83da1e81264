// Red team (issue 13): the chain's app and usage rules, against the real state machine (the
// quorum rules are chain/testing.ts's double: these rules do not depend on signatures).
//   - usage totals cannot be pushed past 2^53 − 1 (they saturate) and counts beyond it are refused;
//   - app names that look like other state key prefixes stay apps; /apps lists each once;
//   - a publisher revoking its app does not touch any node's certification;
//   - a node cannot report usage in another node's name, nor for an app never published;
//   - only a node certified at the block time reports usage (totals rank image providers): a
//     registered, failed, expired or revoked node's usage.record — or a genesis verifier's once it
//     is dropped for a proven fault — is refused and changes nothing.
import t from 'tap'
import { makeChain, fakeDer, testQc, T0, type Harness } from '../chain/harness.ts'
import { generateChainKey, type ChainKey } from '../../chain/keys.ts'
import { TxCode, type AppPublishBody, type AppUsageView, type AppView } from '../../chain/types.ts'
import { decode, encode } from '../../encoding/canonical.ts'

const CID = 'bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy'
const body = (over: Partial<AppPublishBody> = {}): AppPublishBody => ({
  name: 'hello',
  version: '1',
  digest: `sha256:${'ab'.repeat(32)}`,
  cid: CID,
  size: 1024,
  port: 8080,
  limits: { memoryBytes: 64 << 20, pids: 64 },
  idleTimeoutMs: 60_000,
  ...over
})

function q<T>(h: Harness, path: string, params: Record<string, unknown> = {}): T | undefined {
  const r = h.app.query({ path, data: encode(params as never) })
  if (r.code === TxCode.NOT_FOUND) return undefined
  if (r.code !== 0) throw new Error(`query ${path}: ${r.code} ${r.log}`)
  return decode(r.value ?? new Uint8Array()) as T
}
const raw = (h: Harness, key: string): Uint8Array | undefined => {
  const r = h.app.query({ path: '/key', data: new TextEncoder().encode(key) })
  return r.code === 0 ? r.value : undefined
}

async function registered(h: Harness, key: ChainKey): Promise<void> {
  const r = h.run(
    'node.register',
    { nodeId: key.peerId, ekCertificate: fakeDer(7), akPublic: new Uint8Array([7]), addrs: [] },
    key
  )
  if (r.code !== 0) throw new Error(`node.register: ${r.log}`)
}

/** Registers the node and certifies it (a passing round) until `expiresAt`. */
async function certified(h: Harness, key: ChainKey, expiresAt = h.clock.now + 1e9): Promise<void> {
  await registered(h, key)
  const req = h.run('attest.request', { nodeId: key.peerId, round: 1 }, key)
  if (req.code !== 0) throw new Error(`attest.request: ${req.log}`)
  h.block([])
  const rec = h.run('attest.record', { nodeId: key.peerId, round: 1, qc: testQc('pass', expiresAt) }, key)
  if (rec.code !== 0) throw new Error(`attest.record: ${rec.log}`)
}

const usage = (n: ChainKey, from: number, to: number, requests: number, app = 'hello') => ({
  nodeId: n.peerId,
  from,
  to,
  apps: [{ app, requests, bytesIn: requests, bytesOut: requests }]
})

t.test('usage totals saturate at 2^53 − 1; larger counts are refused', async t => {
  const h = await makeChain()
  const pub = await generateChainKey()
  const a = await generateChainKey()
  const b = await generateChainKey()
  t.equal(h.run('app.publish', body(), pub).code, 0)
  await certified(h, a)
  await certified(h, b)
  const max = Number.MAX_SAFE_INTEGER
  t.equal(h.run('usage.record', usage(a, T0, T0 + 10, max), a).code, 0)
  t.equal(h.run('usage.record', usage(b, T0, T0 + 10, max), b).code, 0)
  t.equal(h.run('usage.record', usage(a, T0 + 10, T0 + 20, max), a).code, 0)
  const view = q<AppUsageView>(h, '/app/usage', { name: 'hello' })
  t.equal(view?.totals.requests, max, 'the app total stops at 2^53 − 1 (never an inexact number)')
  t.equal(view?.totals.bytesOut, max)
  t.ok(Number.isSafeInteger(view?.totals.requests), 'still an exact integer')
  const perNode = view?.nodes.find(n => n.nodeId === a.peerId)
  t.equal(perNode?.requests, max, 'the node total saturates too')
  // encoded as CBOR integers beyond 2^53 (the sender's encoder refuses them as numbers)
  for (const big of [2n ** 53n, 2n ** 64n - 1n]) {
    const before = h.app.info().appHash
    const r = h.run('usage.record', usage(a, T0 + 20, T0 + 30, big as never), a)
    t.not(r.code, 0, `${String(big)} requests: refused`)
    t.same(h.app.info().appHash, before, `${String(big)}: nothing changed`)
  }
})

t.test('app names shaped like other key prefixes stay apps; /apps lists each once', async t => {
  const h = await makeChain()
  const pub = await generateChainKey()
  const names = ['app', 'appuse', 'appusen', 'usage', 'node', 'qc', 'hello', 'hello.1', '1']
  for (const name of names) t.equal(h.run('app.publish', body({ name }), pub).code, 0, name)
  t.equal(h.run('app.publish', body({ name: 'hello', version: '2' }), pub).code, 0)
  const listed = q<{ apps: Array<{ record: { name: string } }> }>(h, '/apps')?.apps.map(a => a.record.name) ?? []
  t.same([...listed].sort(), [...names].sort(), 'each app once, no version record taken for an app')
  t.equal(q<AppView>(h, '/app', { name: 'hello' })?.record.current, '2')
  t.equal(q<AppView>(h, '/app', { name: 'hello.1' })?.record.current, '1', '"hello.1" is not version 1 of hello')
  // names and versions that would reach into another key are refused at the door
  for (const [what, over] of [
    ['a slash in the name', { name: 'hello/2' }],
    ['a slash in the version', { version: '1/x' }],
    ['a dot-dot name', { name: '..' }],
    ['an empty version', { version: '' }]
  ] as const) {
    const before = h.app.info().appHash
    t.equal(h.run('app.publish', body(over), pub).code, TxCode.INVALID_BODY, what)
    t.same(h.app.info().appHash, before, `${what}: nothing changed`)
  }
  t.throws(() => q(h, '/app', { name: 'hello/2' }), /app name/, 'a query cannot name another key either')
})

t.test('a publisher revoking its app leaves every certification as it was', async t => {
  const gv = await generateChainKey()
  const validator = await generateChainKey()
  const h = await makeChain({
    validator,
    genesis: {
      chainId: 'quorate-test',
      genesisTime: T0,
      initialHeight: 1,
      validators: [validator.publicKey],
      verifiers: [gv.peerId]
    }
  })
  t.equal(
    h.run(
      'node.register',
      {
        nodeId: gv.peerId,
        ekCertificate: fakeDer(99),
        akPublic: new Uint8Array([9]),
        addrs: [],
        blsPublicKey: new Uint8Array(48).fill(1),
        blsProof: new Uint8Array(96).fill(1)
      },
      gv
    ).code,
    0
  )
  const node = await generateChainKey()
  await registered(h, node)
  t.equal(h.run('attest.request', { nodeId: node.peerId, round: 1, tlsKey: new Uint8Array(32).fill(3) }, node).code, 0)
  h.block([])
  t.equal(
    h.run('attest.record', { nodeId: node.peerId, round: 1, qc: testQc('pass', h.clock.now + 1e9) }, node).code,
    0
  )
  const pub = await generateChainKey()
  t.equal(h.run('app.publish', body(), pub).code, 0)
  t.equal(h.run('usage.record', usage(node, T0, T0 + 10, 5), node).code, 0, 'the node ran the app')
  const keys = [`node/${node.peerId}`, `cert/${node.peerId}`, `qc/${node.peerId}`, `node/${gv.peerId}`]
  const before = keys.map(k => raw(h, k))
  t.ok(
    before.slice(0, 3).every(v => v !== undefined),
    'the node is certified'
  )
  t.equal(h.run('app.revoke', { name: 'hello', version: '1' }, pub).code, 0)
  t.equal(h.run('app.revoke', { name: 'hello' }, pub).code, 0)
  t.same(
    keys.map(k => raw(h, k)),
    before,
    'node, certification and QC records are byte for byte the same'
  )
})

t.test('usage in another node’s name, or for an app never published: refused, nothing changed', async t => {
  const h = await makeChain()
  const pub = await generateChainKey()
  const a = await generateChainKey()
  const b = await generateChainKey()
  t.equal(h.run('app.publish', body(), pub).code, 0)
  await certified(h, a)
  await certified(h, b)
  for (const [what, run, code] of [
    ['b signs a record naming a', () => h.run('usage.record', usage(a, T0, T0 + 10, 1), b), TxCode.UNAUTHORIZED],
    ['an app never published', () => h.run('usage.record', usage(a, T0, T0 + 10, 1, 'ghost'), a), TxCode.NOT_FOUND]
  ] as const) {
    const before = h.app.info().appHash
    t.equal(run().code, code, what)
    t.same(h.app.info().appHash, before, `${what}: nothing changed`)
  }
})

t.test('usage from a node not certified at the block time: refused, nothing changed', async t => {
  const h = await makeChain()
  const pub = await generateChainKey()
  t.equal(h.run('app.publish', body(), pub).code, 0)
  const d32 = (n: number): Uint8Array => new Uint8Array(32).fill(n)
  t.equal(
    h.run('os.publish', { name: 'nixos', version: '1', bank: 'sha256', pcrs: { 11: { golden: [d32(1)] } } }, pub).code,
    0
  )
  // fresh: registered only
  const fresh = await generateChainKey()
  await registered(h, fresh)
  // failed: its only round failed
  const failed = await generateChainKey()
  await registered(h, failed)
  t.equal(h.run('attest.request', { nodeId: failed.peerId, round: 1 }, failed).code, 0)
  h.block([])
  t.equal(
    h.run('attest.record', { nodeId: failed.peerId, round: 1, qc: testQc('fail', h.clock.now + 1e9) }, failed).code,
    0
  )
  // revoked: certified, then the OS reference set it may run (it named none) was revoked
  const revoked = await generateChainKey()
  await certified(h, revoked)
  t.equal(h.run('os.revoke', { name: 'nixos', version: '1' }, pub).code, 0)
  t.equal(raw(h, `cert/${revoked.peerId}`), undefined, 'the revocation ended its certification')
  // expired: certified until a time the chain has since passed
  const expired = await generateChainKey()
  await certified(h, expired, h.clock.now + 20_000)
  t.equal(h.run('usage.record', usage(expired, T0, T0 + 10, 1), expired).code, 0, 'accepted while certified')
  h.clock.now += 30_000
  // the honest node beside them still records
  const honest = await generateChainKey()
  await certified(h, honest)

  for (const [what, key, status] of [
    ['registered, never certified', fresh, 'registered'],
    ['its round failed', failed, 'failed'],
    ['its certificate expired', expired, 'expired'],
    ['its certification was revoked', revoked, 'revoked']
  ] as const) {
    const before = h.app.info().appHash
    const r = h.run('usage.record', usage(key, T0 + 100, T0 + 200, 1_000_000), key)
    t.equal(r.code, TxCode.UNAUTHORIZED, `${what}: refused`)
    t.match(r.log, new RegExp(`not certified at the block time \\(status ${status}\\)`), `${what}: says why`)
    t.same(h.app.info().appHash, before, `${what}: nothing changed`)
  }
  t.equal(h.run('usage.record', usage(honest, T0, T0 + 10, 2), honest).code, 0, 'a certified node records')
  const view = q<AppUsageView>(h, '/app/usage', { name: 'hello' })
  t.equal(view?.totals.requests, 3, 'only the certified records count')
  t.same(view?.nodes.map(n => n.nodeId).sort(), [expired.peerId, honest.peerId].sort(), 'only certified nodes rank')
})

t.test('a genesis verifier records usage until it is dropped for a proven fault', async t => {
  const { encodeTestOnlyVerdict } = await import('../../chain/testing.ts')
  const { sha256 } = await import('../../encoding/bytes.ts')
  // evidence is canonical { bad }: the members' appraisal fails the containers claim when bad
  const appraiser = {
    appraise: (input: { evidence: Uint8Array }): { failedClaims: string[] } =>
      (decode(input.evidence) as { bad?: boolean }).bad === true
        ? { failedClaims: ['containers'] }
        : { failedClaims: [] }
  }
  const verifiers = await Promise.all([0, 1, 2, 3].map(async () => await generateChainKey()))
  const validator = await generateChainKey()
  const h = await makeChain({
    validator,
    appraiser,
    genesis: {
      chainId: 'quorate-test',
      genesisTime: T0,
      initialHeight: 1,
      validators: [validator.publicKey],
      verifiers: verifiers.map(v => v.peerId).sort(),
      certification: { roundDeadlineBlocks: 3, cooldownBaseBlocks: 2, cooldownMaxBlocks: 16 }
    }
  })
  h.block(
    verifiers.map((v, i) =>
      h.tx(
        'node.register',
        {
          nodeId: v.peerId,
          ekCertificate: fakeDer(i),
          akPublic: new Uint8Array([i]),
          addrs: [],
          blsPublicKey: new Uint8Array(48).fill(i + 1),
          blsProof: new Uint8Array(96).fill(1)
        },
        v
      )
    )
  )
  const pub = await generateChainKey()
  t.equal(h.run('app.publish', body(), pub).code, 0)
  const node = await generateChainKey()
  await registered(h, node)
  t.equal(h.run('attest.request', { nodeId: node.peerId, round: 1 }, node).code, 0)
  h.block([])
  const seed = q<{ committee: string[] }>(h, '/seed', { nodeId: node.peerId })
  const committee = seed?.committee ?? []
  t.equal(committee.length, 4)
  const qc = encode({ outcome: 'pass', expiresAt: h.clock.now + 1e9, signers: committee })
  t.equal(h.run('attest.record', { nodeId: node.peerId, round: 1, qc }, node).code, 0)
  const liar = verifiers.find(v => v.peerId === committee[0]) as ChainKey
  t.equal(h.run('usage.record', usage(liar, T0, T0 + 10, 1), liar).code, 0, 'a genesis verifier records usage')

  // the liar passed evidence the members fail: a proven fault drops it
  const evidence = encode({ bad: true })
  t.equal(
    h.run(
      'verifier.fault',
      {
        nodeId: node.peerId,
        round: 1,
        evidence,
        verdict: encodeTestOnlyVerdict({
          member: liar.peerId,
          outcome: 'pass',
          evidenceDigest: sha256(evidence),
          failedClaims: []
        })
      },
      node
    ).code,
    0,
    'the fault is proven'
  )
  t.ok(raw(h, `faulty/${liar.peerId}`) !== undefined, 'the verifier is dropped')
  const before = h.app.info().appHash
  const r = h.run('usage.record', usage(liar, T0 + 10, T0 + 20, 1_000_000), liar)
  t.equal(r.code, TxCode.UNAUTHORIZED, 'a dropped genesis verifier is refused')
  t.match(r.log, /not certified at the block time/)
  t.same(h.app.info().appHash, before, 'nothing changed')
  t.equal(q<AppUsageView>(h, '/app/usage', { name: 'hello' })?.totals.requests, 1)
})
