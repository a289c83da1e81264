// Serverless apps on chain (issue 13) and the node's endpoint and TLS key (issue 14): every rule
// with the attacker who tries to break it; a refused transaction changes nothing.
import t, { type Test } from 'tap'
import { makeChain, fakeDer, testQc, T0, type Harness } from './harness.ts'
import { generateChainKey, type ChainKey } from '../../chain/keys.ts'
import { RECENT_USAGE, USAGE_FUTURE_MS, PROOF_TYPE } from '../../chain/app.ts'
import { verifyStateProof } from '../../chain/store.ts'
import {
  MAX_USAGE_APPS,
  TxCode,
  type AppPublishBody,
  type AppRecord,
  type AppUsageView,
  type AppVersionRecord,
  type AppView,
  type NodeView,
  type SeedView
} from '../../chain/types.ts'
import { decode, encode } from '../../encoding/canonical.ts'
import { utf8 } from '../../encoding/bytes.ts'

const CID = 'bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy'
const MiB = 1024 * 1024
const digest = (n: number): string => `sha256:${n.toString(16).padStart(2, '0').repeat(32)}`
const body = (over: Partial<AppPublishBody> = {}): AppPublishBody => ({
  name: 'hello',
  version: '1',
  digest: digest(1),
  cid: CID,
  size: 2 * MiB,
  port: 8080,
  args: ['httpd', '-f'],
  env: ['MODE=prod'],
  healthPath: '/health',
  limits: { memoryBytes: 256 * MiB, pids: 128, nanoCpus: 500_000_000 },
  idleTimeoutMs: 300_000,
  ...over
})

function q<T>(h: Harness, path: string, params: Record<string, unknown> = {}): T | undefined {
  const r = h.app.query({ path, data: encode(params as never) })
  if (r.code === TxCode.NOT_FOUND) return undefined
  if (r.code !== 0) throw new Error(`query ${path}: ${r.code} ${r.log}`)
  return decode(r.value ?? new Uint8Array()) as T
}

/** Runs a tx that must be refused with `code` (log matching `log`) and checks it changed nothing. */
function refused(
  t: Test,
  h: Harness,
  run: () => { code: number; log: string },
  code: number,
  log: RegExp,
  what: string
): void {
  const before = h.app.info().appHash
  const r = run()
  t.equal(r.code, code, `${what}: code`)
  t.match(r.log, log, `${what}: says why`)
  // the block holding the refused tx was produced; the state (app hash) is the same
  t.same(h.app.info().appHash, before, `${what}: nothing changed`)
}

async function registered(h: Harness, key: ChainKey, extra: Record<string, unknown> = {}): Promise<void> {
  const r = h.run(
    'node.register',
    { nodeId: key.peerId, ekCertificate: fakeDer(7), akPublic: new Uint8Array([7]), addrs: [], ...extra },
    key
  )
  if (r.code !== 0) throw new Error(`node.register: ${r.log}`)
}

/** Registers the node and certifies it with a passing round (the test-only rules accept testQc). */
async function certified(h: Harness, key: ChainKey): Promise<void> {
  await registered(h, key)
  const req = h.run('attest.request', { nodeId: key.peerId, round: 1 }, key)
  if (req.code !== 0) throw new Error(`attest.request: ${req.log}`)
  h.block([])
  const rec = h.run('attest.record', { nodeId: key.peerId, round: 1, qc: testQc('pass', h.clock.now + 1e9) }, key)
  if (rec.code !== 0) throw new Error(`attest.record: ${rec.log}`)
}

t.test('app.publish: the first publisher owns the name; versions are never reused', async t => {
  const h = await makeChain()
  const alice = await generateChainKey()
  const mallory = await generateChainKey()
  t.equal(h.run('app.publish', body(), alice).code, 0)
  let view = q<AppView>(h, '/app', { name: 'hello' })
  t.equal(view?.record.current, '1')
  t.same(view?.record.owner, alice.publicKey)
  t.equal(view?.current?.digest, digest(1))
  t.same(view?.current?.publisher, alice.publicKey)
  t.same(view?.current?.limits, { memoryBytes: 256 * MiB, pids: 128, nanoCpus: 500_000_000 })

  refused(
    t,
    h,
    () => h.run('app.publish', body({ version: '2' }), mallory),
    TxCode.UNAUTHORIZED,
    /another publisher/,
    'someone else publishes a version'
  )
  refused(
    t,
    h,
    () => h.run('app.publish', body({ digest: digest(2) }), alice),
    TxCode.CONFLICT,
    /never reused/,
    'the owner reuses a version'
  )

  t.equal(h.run('app.publish', body({ version: '2', digest: digest(2) }), alice).code, 0)
  view = q<AppView>(h, '/app', { name: 'hello' })
  t.equal(view?.record.current, '2', 'the newest publish is current')
  t.same(view?.record.versions, ['1', '2'])
  t.same(
    view?.versions.map(v => v.digest),
    [digest(1), digest(2)]
  )
  t.equal(q<AppVersionRecord>(h, '/app/version', { name: 'hello', version: '1' })?.digest, digest(1))
  t.equal(q<AppVersionRecord>(h, '/app/version', { name: 'hello', version: '9' }), undefined)
  t.equal(q<AppView>(h, '/app', { name: 'nope' }), undefined)

  // the record is provable against the app hash (what a light client checks)
  const r = h.app.query({ path: '/key', data: utf8.encode('app/hello'), prove: true })
  t.equal(r.code, 0)
  const op = r.proofOps?.find(o => o.type === PROOF_TYPE)
  t.ok(
    op !== undefined && verifyStateProof(h.app.info().appHash, 'app/hello', r.value as Uint8Array, op.data),
    'app/<name> proof verifies'
  )
  t.equal((decode(r.value as Uint8Array) as unknown as AppRecord).current, '2')

  // a second app, listed with its current version
  t.equal(h.run('app.publish', body({ name: 'other', version: 'v0.1' }), mallory).code, 0)
  const list = q<{ apps: Array<{ record: AppRecord; current?: AppVersionRecord }> }>(h, '/apps')?.apps ?? []
  t.same(
    list.map(a => [a.record.name, a.current?.version]),
    [
      ['hello', '2'],
      ['other', 'v0.1']
    ]
  )
  t.equal(
    h.app.query({ path: '/app', data: encode({ name: '../node' }) }).code,
    TxCode.INVALID_BODY,
    'a query name must be an app name'
  )
})

t.test('app.revoke: owner only; one version or the whole app, for good', async t => {
  const h = await makeChain()
  const alice = await generateChainKey()
  const mallory = await generateChainKey()
  for (const v of ['1', '2', '3']) t.equal(h.run('app.publish', body({ version: v }), alice).code, 0)

  refused(
    t,
    h,
    () => h.run('app.revoke', { name: 'hello' }, mallory),
    TxCode.UNAUTHORIZED,
    /only its owner/,
    'someone else revokes the app'
  )
  refused(
    t,
    h,
    () => h.run('app.revoke', { name: 'hello', version: '3' }, mallory),
    TxCode.UNAUTHORIZED,
    /only its owner/,
    'someone else revokes a version'
  )
  refused(t, h, () => h.run('app.revoke', { name: 'nope' }, alice), TxCode.NOT_FOUND, /never published/, 'unknown app')
  refused(
    t,
    h,
    () => h.run('app.revoke', { name: 'hello', version: '7' }, alice),
    TxCode.NOT_FOUND,
    /no version 7/,
    'unknown version'
  )

  // revoking an older version leaves the current one
  t.equal(h.run('app.revoke', { name: 'hello', version: '1' }, alice).code, 0)
  t.equal(q<AppView>(h, '/app', { name: 'hello' })?.record.current, '3')
  // revoking the current one moves current to the newest version still in force
  t.equal(h.run('app.revoke', { name: 'hello', version: '3' }, alice).code, 0)
  let view = q<AppView>(h, '/app', { name: 'hello' })
  t.equal(view?.record.current, '2')
  t.equal(view?.current?.version, '2')
  t.ok(view?.versions.find(v => v.version === '3')?.revokedAt !== undefined, 'the version is marked revoked')
  refused(
    t,
    h,
    () => h.run('app.revoke', { name: 'hello', version: '3' }, alice),
    TxCode.CONFLICT,
    /already revoked/,
    'revoked twice'
  )
  refused(
    t,
    h,
    () => h.run('app.publish', body({ version: '3' }), alice),
    TxCode.CONFLICT,
    /never reused/,
    'a revoked version published again'
  )
  t.equal(h.run('app.revoke', { name: 'hello', version: '2' }, alice).code, 0)
  view = q<AppView>(h, '/app', { name: 'hello' })
  t.equal(view?.record.current, undefined, 'no version in force: none is current')
  t.equal(view?.current, undefined)
  t.equal(h.run('app.publish', body({ version: '4' }), alice).code, 0, 'a new version after every old one was revoked')
  t.equal(q<AppView>(h, '/app', { name: 'hello' })?.record.current, '4')

  // the whole app
  t.equal(h.run('app.revoke', { name: 'hello' }, alice).code, 0)
  view = q<AppView>(h, '/app', { name: 'hello' })
  t.ok(view?.record.revokedAt !== undefined)
  t.equal(view?.record.current, undefined)
  refused(
    t,
    h,
    () => h.run('app.publish', body({ version: '5' }), alice),
    TxCode.CONFLICT,
    /stays revoked/,
    'publish after the whole app was revoked'
  )
  refused(
    t,
    h,
    () => h.run('app.publish', body({ version: '5' }), mallory),
    TxCode.UNAUTHORIZED,
    /another publisher/,
    'someone else takes over a revoked name'
  )
  refused(
    t,
    h,
    () => h.run('app.revoke', { name: 'hello' }, alice),
    TxCode.CONFLICT,
    /already revoked/,
    'revoked twice'
  )
  refused(
    t,
    h,
    () => h.run('app.revoke', { name: 'hello', version: '4' }, alice),
    TxCode.CONFLICT,
    /already revoked/,
    'a version of a revoked app'
  )
})

t.test('malformed bodies are refused with the field named', async t => {
  const h = await makeChain()
  const k = await generateChainKey()
  const cases: Array<[string, Record<string, unknown>, RegExp]> = [
    ['name upper case', { name: 'Hello' }, /app.publish.name/],
    ['name with a slash', { name: 'a/b' }, /app.publish.name/],
    ['version with a slash', { version: '1/2' }, /app.publish.version/],
    ['digest not sha256', { digest: 'sha1:abc' }, /app.publish.digest/],
    ['digest upper case', { digest: `sha256:${'AB'.repeat(32)}` }, /app.publish.digest/],
    ['cid garbage', { cid: 'notacid12345' }, /app.publish.cid/],
    ['size 0', { size: 0 }, /app.publish.size/],
    ['port 0', { port: 0 }, /app.publish.port/],
    ['port 65536', { port: 65_536 }, /app.publish.port/],
    ['65 args', { args: Array.from({ length: 65 }, () => 'x') }, /app.publish.args/],
    ['arg of 4097 bytes', { args: ['x'.repeat(4097)] }, /app.publish.args/],
    ['arg with NUL', { args: ['a\0b'] }, /app.publish.args/],
    ['args not strings', { args: [1] }, /app.publish.args/],
    ['env without =', { env: ['NOEQUALS'] }, /KEY=value/],
    ['env key starting with a digit', { env: ['1A=b'] }, /KEY=value/],
    ['healthPath without /', { healthPath: 'health' }, /app.publish.healthPath/],
    ['healthPath with a space', { healthPath: '/a b' }, /app.publish.healthPath/],
    ['memory 1 MiB', { limits: { memoryBytes: MiB, pids: 1 } }, /memoryBytes/],
    ['memory 65 GiB', { limits: { memoryBytes: 65 * 1024 * MiB, pids: 1 } }, /memoryBytes/],
    ['pids 0', { limits: { memoryBytes: 64 * MiB, pids: 0 } }, /pids/],
    ['pids 65537', { limits: { memoryBytes: 64 * MiB, pids: 65_537 } }, /pids/],
    ['nanoCpus 0', { limits: { memoryBytes: 64 * MiB, pids: 1, nanoCpus: 0 } }, /nanoCpus/],
    ['limits with an unknown field', { limits: { memoryBytes: 64 * MiB, pids: 1, swap: 1 } }, /unknown field "swap"/],
    ['idle 999 ms', { idleTimeoutMs: 999 }, /idleTimeoutMs/],
    ['idle over 24 h', { idleTimeoutMs: 24 * 3600_000 + 1 }, /idleTimeoutMs/],
    ['unknown field', { privileged: true }, /unknown field "privileged"/],
    ['limits missing', { limits: undefined }, /limits: missing/]
  ]
  for (const [what, over, log] of cases) {
    const b = { ...body(), ...over } as Record<string, unknown>
    for (const [key, v] of Object.entries(b)) if (v === undefined) delete b[key]
    refused(t, h, () => h.run('app.publish', b as never, k), TxCode.INVALID_BODY, log, what)
  }
  // the bounds themselves are accepted
  t.equal(
    h.run(
      'app.publish',
      body({
        args: Array.from({ length: 64 }, () => 'y'.repeat(100)),
        limits: { memoryBytes: 4 * MiB, pids: 65_536 },
        idleTimeoutMs: 1000,
        port: 65_535
      }),
      k
    ).code,
    0
  )
  refused(
    t,
    h,
    () => h.run('app.revoke', { name: 'hello', version: 'a b' } as never, k),
    TxCode.INVALID_BODY,
    /app.revoke.version/,
    'revoke version malformed'
  )
  refused(
    t,
    h,
    () => h.run('app.revoke', { name: 'hello', all: true } as never, k),
    TxCode.INVALID_BODY,
    /unknown field/,
    'revoke unknown field'
  )
})

t.test('usage.record: signed by the certified node, periods never overlap, only published apps', async t => {
  const h = await makeChain()
  const pub = await generateChainKey()
  const node = await generateChainKey()
  const node2 = await generateChainKey()
  const stranger = await generateChainKey()
  t.equal(h.run('app.publish', body(), pub).code, 0)
  t.equal(h.run('app.publish', body({ name: 'b' }), pub).code, 0)
  const use = (
    n: ChainKey,
    from: number,
    to: number,
    apps = [{ app: 'hello', requests: 10, bytesIn: 100, bytesOut: 1000 }]
  ) => ({
    nodeId: n.peerId,
    from,
    to,
    apps
  })
  const now = (): number => h.app.info().time

  refused(
    t,
    h,
    () => h.run('usage.record', use(node, T0, T0 + 10), node),
    TxCode.NOT_FOUND,
    /not registered/,
    'an unregistered node'
  )
  await registered(h, node)
  refused(
    t,
    h,
    () => h.run('usage.record', use(node, T0, T0 + 10), node),
    TxCode.UNAUTHORIZED,
    /not certified at the block time \(status registered\)/,
    'a registered node that is not certified'
  )
  await certified(h, node)
  await certified(h, node2)
  refused(
    t,
    h,
    () => h.run('usage.record', use(node, T0, T0 + 10), stranger),
    TxCode.UNAUTHORIZED,
    /own key/,
    'signed by another key'
  )
  refused(
    t,
    h,
    () => h.run('usage.record', use(node, T0, T0 + 10), node2),
    TxCode.UNAUTHORIZED,
    /own key/,
    'signed by another registered node'
  )
  // the block time of the next block is the clock + 1 s (harness)
  refused(
    t,
    h,
    () => h.run('usage.record', use(node, T0, now() + 1000 + USAGE_FUTURE_MS + 1), node),
    TxCode.TOO_EARLY,
    /after the block time/,
    'a period ending in the future'
  )
  refused(
    t,
    h,
    () => h.run('usage.record', use(node, T0, T0 + 10, [{ app: 'ghost', requests: 1, bytesIn: 1, bytesOut: 1 }]), node),
    TxCode.NOT_FOUND,
    /"ghost", which was never published/,
    'an app never published'
  )
  const tooMany = Array.from({ length: MAX_USAGE_APPS + 1 }, (_, i) => ({
    app: `a${i}`,
    requests: 1,
    bytesIn: 1,
    bytesOut: 1
  }))
  refused(
    t,
    h,
    () => h.run('usage.record', use(node, T0, T0 + 10, tooMany), node),
    TxCode.INVALID_BODY,
    /1–64 per-app/,
    'too many apps'
  )
  const twice = [
    { app: 'hello', requests: 1, bytesIn: 1, bytesOut: 1 },
    { app: 'hello', requests: 1, bytesIn: 1, bytesOut: 1 }
  ]
  refused(
    t,
    h,
    () => h.run('usage.record', use(node, T0, T0 + 10, twice), node),
    TxCode.INVALID_BODY,
    /listed twice/,
    'an app listed twice'
  )
  refused(
    t,
    h,
    () => h.run('usage.record', use(node, T0 + 10, T0 + 10), node),
    TxCode.INVALID_BODY,
    /from must be before to/,
    'an empty period'
  )
  refused(t, h, () => h.run('usage.record', use(node, T0, T0 + 10, []), node), TxCode.INVALID_BODY, /1–64/, 'no apps')
  refused(
    t,
    h,
    () =>
      h.run('usage.record', use(node, T0, T0 + 10, [{ app: 'hello', requests: -1, bytesIn: 1, bytesOut: 1 }]), node),
    TxCode.INVALID_BODY,
    /requests/,
    'a negative count'
  )

  t.equal(h.run('usage.record', use(node, T0, T0 + 1000), node).code, 0)
  refused(
    t,
    h,
    () => h.run('usage.record', use(node, T0 + 999, T0 + 2000), node),
    TxCode.CONFLICT,
    /overlaps/,
    'an overlapping period'
  )
  refused(
    t,
    h,
    () => h.run('usage.record', use(node, T0, T0 + 1000), node),
    TxCode.CONFLICT,
    /overlaps/,
    'the same period again'
  )
  t.equal(
    h.run(
      'usage.record',
      use(node, T0 + 1000, T0 + 2000, [
        { app: 'hello', requests: 5, bytesIn: 50, bytesOut: 500 },
        { app: 'b', requests: 1, bytesIn: 2, bytesOut: 3 }
      ]),
      node
    ).code,
    0,
    'the next period may start where the last ended'
  )
  t.equal(h.run('usage.record', use(node2, T0, T0 + 500), node2).code, 0, 'periods of different nodes are independent')
  const u = q<AppUsageView>(h, '/app/usage', { name: 'hello' })
  t.same(u?.totals && { ...u.totals, height: 0 }, {
    app: 'hello',
    requests: 25,
    bytesIn: 250,
    bytesOut: 2500,
    records: 3,
    nodes: 2,
    from: T0,
    to: T0 + 2000,
    height: 0
  })
  t.same(
    u?.nodes.map(n => [n.nodeId, n.requests, n.records]).sort(),
    [
      [node.peerId, 15, 2],
      [node2.peerId, 10, 1]
    ].sort()
  )
  t.same(
    u?.recent.map(r => [r.nodeId, r.from]),
    [
      [node2.peerId, T0],
      [node.peerId, T0 + 1000],
      [node.peerId, T0]
    ],
    'recent lines, newest first'
  )
  t.same(q<AppUsageView>(h, '/app/usage', { name: 'b' })?.totals.requests, 1)
  t.equal(q<AppUsageView>(h, '/app/usage', { name: 'ghost' }), undefined, 'no usage view for an app never published')

  // bounded: only the most recent records are kept, the totals count every one
  for (let i = 0; i < RECENT_USAGE; i++)
    t.equal(h.run('usage.record', use(node, T0 + 3000 + i * 10, T0 + 3005 + i * 10), node).code, 0)
  const v = q<AppUsageView>(h, '/app/usage', { name: 'hello' })
  t.equal(v?.recent.length, RECENT_USAGE, 'recent lines are bounded')
  t.equal(v?.totals.records, 3 + RECENT_USAGE)
  const kept = h.app.query({ path: '/key', data: utf8.encode(`usage/${node.peerId}/${'0'.repeat(16)}`) })
  t.equal(kept.code, TxCode.NOT_FOUND, "the node's oldest record was dropped")
})

t.test('node.register endpoint: https anywhere, plain http only on loopback', async t => {
  const h = await makeChain()
  const n = await generateChainKey()
  const reg = (endpoint: unknown) => () =>
    h.run(
      'node.register',
      { nodeId: n.peerId, ekCertificate: fakeDer(1), akPublic: new Uint8Array([1]), addrs: [], endpoint } as never,
      n
    )
  const bad: Array<[string, unknown]> = [
    ['http on a non-loopback address', 'http://198.18.0.1:8080'],
    ['http on a public name', 'http://node.example.com'],
    ['http on a name that starts like localhost', 'http://localhost.evil.example'],
    ['http on 127… as a subdomain', 'http://127.0.0.1.evil.example'],
    ['credentials', 'https://user:pw@node.example.com'],
    ['a query', 'https://node.example.com/?x=1'],
    ['a fragment', 'https://node.example.com/#f'],
    ['another scheme', 'ftp://node.example.com'],
    ['no slashes', 'https:node.example.com'],
    ['not a URL', 'node.example.com'],
    ['too long', `https://node.example.com/${'a'.repeat(240)}`],
    ['a space', 'https://node.example.com/a b'],
    ['not a string', 42]
  ]
  for (const [what, e] of bad) refused(t, h, reg(e), TxCode.INVALID_BODY, /node.register.endpoint/, what)
  for (const e of [
    'https://node.example.com:8443',
    'http://127.0.0.1:8080',
    'http://[::1]:80/x',
    'http://localhost:1'
  ]) {
    t.equal(reg(e)().code, 0, e)
    t.equal(q<NodeView>(h, '/node', { nodeId: n.peerId })?.record?.endpoint, e)
  }
  t.equal(reg(undefined)().code, 0, 'registering without an endpoint')
  t.equal(
    q<NodeView>(h, '/node', { nodeId: n.peerId })?.record?.endpoint,
    undefined,
    're-registering without one clears it'
  )
})

async function tlsChain(t: Test, certification: Record<string, unknown>) {
  const gv = await generateChainKey()
  const validator = await generateChainKey()
  const genesis = {
    chainId: 'quorate-test',
    genesisTime: T0,
    initialHeight: 1,
    validators: [validator.publicKey],
    verifiers: [gv.peerId],
    certification
  }
  const h = await makeChain({ genesis, validator })
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
  await registered(h, node, { endpoint: 'https://node.example.com' })
  return { h, gv, node }
}

t.test(
  'attest.request tlsKey: exactly 32 bytes, served with the seed, recorded on the node only by a passing QC',
  async t => {
    const { h, node } = await tlsChain(t, { cooldownBaseBlocks: 1, cooldownMaxBlocks: 1 })
    const key = (n: number): Uint8Array => new Uint8Array(32).fill(n)
    const view = (): NodeView | undefined => q<NodeView>(h, '/node', { nodeId: node.peerId })
    refused(
      t,
      h,
      () => h.run('attest.request', { nodeId: node.peerId, round: 1, tlsKey: new Uint8Array(31) }, node),
      TxCode.INVALID_BODY,
      /tlsKey: expected 32–32 bytes/,
      'a 31-byte tlsKey'
    )
    refused(
      t,
      h,
      () => h.run('attest.request', { nodeId: node.peerId, round: 1, tlsKey: new Uint8Array(33) }, node),
      TxCode.INVALID_BODY,
      /tlsKey/,
      'a 33-byte tlsKey'
    )

    // round 1 binds key A but fails: nothing is recorded on the node
    t.equal(h.run('attest.request', { nodeId: node.peerId, round: 1, tlsKey: key(0xa) }, node).code, 0)
    t.same(view()?.request?.tlsKey, key(0xa), 'the request keeps the key')
    t.equal(view()?.record?.tlsKey, undefined, 'a request alone records nothing on the node')
    h.block([])
    t.same(q<SeedView>(h, '/seed', { nodeId: node.peerId })?.tlsKey, key(0xa), 'members see the key the round binds')
    t.equal(h.run('attest.record', { nodeId: node.peerId, round: 1, qc: testQc('fail', 0) }, node).code, 0)
    t.equal(view()?.record?.tlsKey, undefined, 'a failing QC records no key')
    h.block([])

    // round 2 binds key B and passes
    t.equal(h.run('attest.request', { nodeId: node.peerId, round: 2, tlsKey: key(0xb) }, node).code, 0)
    h.block([])
    t.equal(
      h.run('attest.record', { nodeId: node.peerId, round: 2, qc: testQc('pass', h.clock.now + 1e9) }, node).code,
      0
    )
    t.equal(view()?.effective, 'certified')
    t.same(view()?.record?.tlsKey, key(0xb), 'the passing round recorded its key')

    // a new key needs a new round: asking for C changes nothing until that round passes
    t.equal(h.run('attest.request', { nodeId: node.peerId, round: 3, tlsKey: key(0xc) }, node).code, 0)
    h.block([])
    t.same(view()?.record?.tlsKey, key(0xb), 'an open round does not replace the certified key')
    // re-registering with the same identity keeps the certification and its key; the endpoint changes
    await registered(h, node, { endpoint: 'https://moved.example.com' })
    t.same(view()?.record?.tlsKey, key(0xb))
    t.equal(view()?.record?.endpoint, 'https://moved.example.com')
    t.equal(
      h.run('attest.record', { nodeId: node.peerId, round: 3, qc: testQc('pass', h.clock.now + 1e9) }, node).code,
      0
    )
    t.same(view()?.record?.tlsKey, key(0xc))

    // a passing round without a key leaves the node without one
    t.equal(h.run('attest.request', { nodeId: node.peerId, round: 4 }, node).code, 0)
    h.block([])
    t.equal(
      h.run('attest.record', { nodeId: node.peerId, round: 4, qc: testQc('pass', h.clock.now + 1e9) }, node).code,
      0
    )
    t.equal(view()?.record?.tlsKey, undefined)

    // a reset (reboot) ends the certification and its key
    t.equal(h.run('attest.request', { nodeId: node.peerId, round: 5, tlsKey: key(0xd) }, node).code, 0)
    h.block([])
    t.equal(
      h.run('attest.record', { nodeId: node.peerId, round: 5, qc: testQc('pass', h.clock.now + 1e9) }, node).code,
      0
    )
    t.same(view()?.record?.tlsKey, key(0xd))
    t.equal(h.run('attest.request', { nodeId: node.peerId, round: 6, reset: true, tlsKey: key(0xe) }, node).code, 0)
    t.equal(view()?.record?.tlsKey, undefined, 'a reset drops the key with the certification')
    t.not(view()?.effective, 'certified')
  }
)

t.test('legacy rules: the request keeps tlsKey, the node record is written as before', async t => {
  const { h, node } = await tlsChain(t, { rules: 'legacy' })
  t.equal(h.run('attest.request', { nodeId: node.peerId, round: 1, tlsKey: new Uint8Array(32).fill(1) }, node).code, 0)
  h.block([])
  t.equal(
    h.run('attest.record', { nodeId: node.peerId, round: 1, qc: testQc('pass', h.clock.now + 1e9) }, node).code,
    0
  )
  const v = q<NodeView>(h, '/node', { nodeId: node.peerId })
  t.equal(v?.effective, 'certified')
  t.equal(v?.record?.tlsKey, undefined, 'legacy rules never record a TLS key')
})

t.test('verifier.fault re-appraisal judges app launches ("<name>@<version>") as the members do', async t => {
  const { encodeTestOnlyVerdict } = await import('../../chain/testing.ts')
  const { sha256 } = await import('../../encoding/bytes.ts')
  // evidence here is canonical { launches: [[digest, image], …] }; containers fails unless every launch is allowed
  const appraiser = {
    appraise: (input: {
      evidence: Uint8Array
      imageAllowed: (digest: string, image?: string) => boolean
    }): { failedClaims: string[] } => {
      const { launches } = decode(input.evidence) as unknown as { launches: Array<[string, string]> }
      return { failedClaims: launches.every(([d, i]) => input.imageAllowed(d, i)) ? [] : ['containers'] }
    }
  }
  const verifiers = await Promise.all([0, 1, 2, 3].map(async () => await generateChainKey()))
  const validator = await generateChainKey()
  const genesis = {
    chainId: 'quorate-test',
    genesisTime: T0,
    initialHeight: 1,
    validators: [validator.publicKey],
    verifiers: verifiers.map(v => v.peerId).sort(),
    certification: { roundDeadlineBlocks: 3, cooldownBaseBlocks: 2, cooldownMaxBlocks: 16 }
  }
  const h = await makeChain({ genesis, validator, appraiser })
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
  const owner = await generateChainKey()
  t.equal(h.run('app.publish', body({ digest: digest(1) }), owner).code, 0)
  const node = await generateChainKey()
  await registered(h, node)
  t.equal(h.run('attest.request', { nodeId: node.peerId, round: 1 }, node).code, 0)
  h.block([])
  const committee = q<SeedView>(h, '/seed', { nodeId: node.peerId })?.committee ?? []
  t.equal(committee.length, 4)
  const qc = encode({ outcome: 'pass', expiresAt: h.clock.now + 1e9, signers: committee })
  t.equal(h.run('attest.record', { nodeId: node.peerId, round: 1, qc }, node).code, 0)
  // revoking the app afterwards does not make the launch a fault (nodes stop a revoked app themselves)
  t.equal(h.run('app.revoke', { name: 'hello' }, owner).code, 0)

  const fault = (
    member: string,
    outcome: 'pass' | 'fail',
    launches: Array<[string, string]>,
    failed: string[] = []
  ) => {
    const evidence = encode({ launches })
    return h.run(
      'verifier.fault',
      {
        nodeId: node.peerId,
        round: 1,
        evidence,
        verdict: encodeTestOnlyVerdict({ member, outcome, evidenceDigest: sha256(evidence), failedClaims: failed })
      },
      node
    )
  }
  refused(
    t,
    h,
    () => fault(committee[0], 'pass', [[digest(1), 'hello@1']]),
    TxCode.NO_FAULT,
    /agrees/,
    'an honest pass of a published app launch'
  )
  t.equal(
    fault(committee[0], 'pass', [[digest(2), 'hello@1']]).code,
    0,
    'a pass of a launch with another digest is a fault'
  )
  t.equal(fault(committee[1], 'pass', [[digest(1), 'hello@9']]).code, 0, 'a pass of an unpublished version is a fault')
  t.equal(
    fault(committee[2], 'pass', [[digest(1), 'hello']]).code,
    0,
    'a plain image launch is judged as an image: an app digest alone is not a published image'
  )
  t.equal(
    fault(committee[3], 'fail', [[digest(1), 'hello@1']], ['containers']).code,
    0,
    'failing a published app launch is a fault'
  )
})

t.test('a history with apps, usage, endpoints and TLS keys replays to the same app hash', async t => {
  const { mkdtemp, rm } = await import('node:fs/promises')
  const { tmpdir } = await import('node:os')
  const { join } = await import('node:path')
  const { replayBlockLog } = await import('../../chain/replay.ts')
  const { createTestOnlyQuorumRules } = await import('../../chain/testing.ts')
  const { toHex } = await import('../../encoding/bytes.ts')
  const dir = await mkdtemp(join(tmpdir(), 'quorate-apps-replay-'))
  t.teardown(async () => {
    await rm(dir, { recursive: true, force: true })
  })
  const path = join(dir, 'chain.sqlite')
  const gv = await generateChainKey()
  const h = await makeChain({ path, verifiers: [gv] })
  t.teardown(() => {
    h.app.close()
  })
  const owner = await generateChainKey()
  const node = await generateChainKey()
  t.equal(
    h.run(
      'node.register',
      {
        nodeId: gv.peerId,
        ekCertificate: fakeDer(1),
        akPublic: new Uint8Array([1]),
        addrs: [],
        blsPublicKey: new Uint8Array(48).fill(1),
        blsProof: new Uint8Array(96).fill(1)
      },
      gv
    ).code,
    0
  )
  await registered(h, node, { endpoint: 'https://n.example.com' })
  t.equal(h.run('app.publish', body(), owner).code, 0)
  t.equal(h.run('app.publish', body({ version: '2' }), owner).code, 0)
  t.equal(h.run('app.publish', body({ version: '2' }), node).code, TxCode.UNAUTHORIZED, 'a refused tx in the log')
  t.equal(h.run('attest.request', { nodeId: node.peerId, round: 1, tlsKey: new Uint8Array(32).fill(3) }, node).code, 0)
  h.block([])
  t.equal(
    h.run('attest.record', { nodeId: node.peerId, round: 1, qc: testQc('pass', h.clock.now + 1e9) }, node).code,
    0
  )
  const now = h.app.info().time
  t.equal(
    h.run(
      'usage.record',
      {
        nodeId: node.peerId,
        from: now - 1000,
        to: now,
        apps: [{ app: 'hello', requests: 1, bytesIn: 2, bytesOut: 3 }]
      },
      node
    ).code,
    0
  )
  t.equal(h.run('app.revoke', { name: 'hello', version: '2' }, owner).code, 0)
  const r = replayBlockLog({ dbPath: path, genesis: h.genesis, rules: createTestOnlyQuorumRules() })
  t.teardown(() => {
    r.app.close()
  })
  t.same(r.mismatches, [])
  t.equal(toHex(r.appHash), toHex(h.app.info().appHash), 'replay reaches the same app hash')
  t.same(q<NodeView>(h, '/node', { nodeId: node.peerId })?.record?.tlsKey, new Uint8Array(32).fill(3))
})
