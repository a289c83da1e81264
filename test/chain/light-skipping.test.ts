// Unit test of the light client's CometBFT header linking on a synthesized chain whose validator
// set changes (our app never changes CometBFT's set, so a real network cannot show this): skipping
// over unchanged sets, bisection when the old set no longer signs, the trusting period, time rules.
// The chain is served by a fake RpcTransport (a mock inside this module's unit test only); its
// headers and precommits are built with the same encoders the real-network test checked.
import t from 'tap'
import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto'
import { toBase64, toHex } from '../../encoding/bytes.ts'
import { validatorAddress } from '../../chain/producer.ts'
import { LightClient, NoVerifiedAnswerError, TrustExpiredError, type RpcTransport } from '../../chain/light/index.ts'
import {
  headerHash,
  precommitSignBytes,
  sortValidators,
  validatorSetHash,
  type CometHeader,
  type Validator
} from '../../chain/light/cometbft.ts'

const CHAIN = 'synth'
const T0 = Date.UTC(2026, 11, 1)
const HEX = (b: Uint8Array): string => toHex(b).toUpperCase()
const iso = (ms: number): string => new Date(ms).toISOString()

interface Key {
  v: Validator
  priv: KeyObject
}
function key(): Key {
  const k = generateKeyPairSync('ed25519')
  const pub = new Uint8Array(Buffer.from(k.publicKey.export({ format: 'jwk' }).x as string, 'base64url'))
  return { v: { address: validatorAddress(pub), publicKey: pub, power: 10 }, priv: k.privateKey }
}

interface Block {
  header: CometHeader
  hash: Uint8Array
  set: Key[]
}

/** Builds heights 1..sets.length; block h is signed by sets[h - 1] (sorted as CometBFT sorts). */
function synthChain(sets: Key[][], timeOf: (h: number) => number = h => T0 + h * 1000): Block[] {
  const sorted = sets.map(s => sortValidators(s.map(k => k.v)).map(v => s.find(k => k.v === v) as Key))
  const blocks: Block[] = []
  for (let h = 1; h <= sets.length; h++) {
    const set = sorted[h - 1]
    const next = sorted[h] ?? set
    const prev = blocks[h - 2]
    const ms = timeOf(h)
    const header: CometHeader = {
      version: { block: 11, app: 1 },
      chainId: CHAIN,
      height: h,
      time: { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1e6 + 123 },
      lastBlockId:
        prev === undefined
          ? { hash: new Uint8Array(0), parts: { total: 0, hash: new Uint8Array(0) } }
          : { hash: prev.hash, parts: { total: 1, hash: new Uint8Array(32).fill(h) } },
      lastCommitHash: new Uint8Array(32).fill(1),
      dataHash: new Uint8Array(32).fill(2),
      validatorsHash: validatorSetHash(set.map(k => k.v)),
      nextValidatorsHash: validatorSetHash(next.map(k => k.v)),
      consensusHash: new Uint8Array(32).fill(3),
      appHash: new Uint8Array(32).fill(h % 256),
      lastResultsHash: new Uint8Array(32).fill(4),
      evidenceHash: new Uint8Array(32).fill(5),
      proposerAddress: set[0].v.address
    }
    blocks.push({ header, hash: headerHash(header), set })
  }
  return blocks
}

const nanosIso = (t: { seconds: number; nanos: number }): string =>
  `${new Date(t.seconds * 1000).toISOString().slice(0, 19)}.${String(t.nanos).padStart(9, '0')}Z`

function commitJson(b: Block): unknown {
  const h = b.header
  const parts = { total: 1, hash: new Uint8Array(32).fill(9) }
  const blockId = { hash: b.hash, parts }
  return {
    signed_header: {
      header: {
        version: { block: String(h.version.block), app: String(h.version.app) },
        chain_id: h.chainId,
        height: String(h.height),
        time: nanosIso(h.time),
        last_block_id: {
          hash: HEX(h.lastBlockId.hash),
          parts: { total: h.lastBlockId.parts.total, hash: HEX(h.lastBlockId.parts.hash) }
        },
        last_commit_hash: HEX(h.lastCommitHash),
        data_hash: HEX(h.dataHash),
        validators_hash: HEX(h.validatorsHash),
        next_validators_hash: HEX(h.nextValidatorsHash),
        consensus_hash: HEX(h.consensusHash),
        app_hash: HEX(h.appHash),
        last_results_hash: HEX(h.lastResultsHash),
        evidence_hash: HEX(h.evidenceHash),
        proposer_address: HEX(h.proposerAddress)
      },
      commit: {
        height: String(h.height),
        round: 0,
        block_id: { hash: HEX(b.hash), parts: { total: 1, hash: HEX(parts.hash) } },
        signatures: b.set.map((k, i) => {
          const ts = { seconds: h.time.seconds + 1, nanos: i }
          return {
            block_id_flag: 2,
            validator_address: HEX(k.v.address),
            timestamp: nanosIso(ts),
            signature: toBase64(sign(null, precommitSignBytes(CHAIN, h.height, 0, blockId, ts), k.priv))
          }
        })
      }
    },
    canonical: true
  }
}

function validatorsJson(b: Block, page: number): unknown {
  const all = b.set.map(k => ({
    address: HEX(k.v.address),
    pub_key: { type: 'tendermint/PubKeyEd25519', value: toBase64(k.v.publicKey) },
    voting_power: String(k.v.power),
    proposer_priority: '0'
  }))
  return {
    block_height: String(b.header.height),
    validators: all.slice((page - 1) * 100, page * 100),
    count: String(Math.min(100, all.length)),
    total: String(all.length)
  }
}

/** Serves `blocks` as an RPC endpoint would; counts commit calls by height. */
function fakeTransport(blocks: Block[], edit?: (method: string, height: number, r: unknown) => unknown) {
  const commits: number[] = []
  const factory = (url: string): RpcTransport => ({
    url,
    close: () => {},
    call: async (method, params) => {
      const h = params.height === undefined ? blocks.length : Number(params.height)
      const b = blocks[h - 1]
      if (b === undefined) throw new Error(`no block ${h}`)
      let r: unknown
      if (method === 'commit') {
        commits.push(h)
        r = commitJson(b)
      } else if (method === 'validators') r = validatorsJson(b, Number(params.page ?? 1))
      else throw new Error(`method ${method} not served`)
      return edit === undefined ? r : edit(method, h, r)
    }
  })
  return { factory, commits }
}

const genesisOf = (set: Key[]): Record<string, unknown> => ({
  chain_id: CHAIN,
  genesis_time: iso(T0),
  initial_height: '1',
  validators: set.map(k => ({
    address: HEX(k.v.address),
    pub_key: { type: 'tendermint/PubKeyEd25519', value: toBase64(k.v.publicKey) },
    power: String(k.v.power)
  }))
})

const A = Array.from({ length: 4 }, key)
const B = Array.from({ length: 4 }, key)
const C = Array.from({ length: 4 }, key)

t.test('an unchanged set: the newest header is trusted by skipping, no header in between is fetched', async t => {
  const blocks = synthChain(Array.from({ length: 50 }, () => A))
  const { factory, commits } = fakeTransport(blocks)
  const lc = LightClient.create({ genesis: genesisOf(A), rpcs: ['fake:'], transport: factory, now: () => T0 + 51_000 })
  const h = await lc.verifiedHeader()
  t.equal(h.height, 50)
  t.same(commits, [50], 'one commit fetched: genesis validators vouch for block 50 directly')
})

t.test('a set that changed completely: bisection through the blocks where it changed', async t => {
  // A signs 1–20; A→B over 21–30 (half of each); B signs 31–60; C from 61
  const AB = [...A.slice(0, 2), ...B.slice(0, 2)]
  const sets = Array.from({ length: 80 }, (_, i) => {
    const h = i + 1
    return h <= 20 ? A : h <= 30 ? AB : h <= 60 ? B : C
  })
  const blocks = synthChain(sets)
  const { factory, commits } = fakeTransport(blocks)
  const lc = LightClient.create({ genesis: genesisOf(A), rpcs: ['fake:'], transport: factory, now: () => T0 + 81_000 })
  const h = await lc.verifiedHeader()
  t.equal(h.height, 80)
  t.ok(commits.length > 1 && commits.length < 20, `bisection fetched ${commits.length} headers, not all 80`)
  t.same(
    h.validators.map(v => HEX(v.address)),
    sortValidators(C.map(k => k.v)).map(v => HEX(v.address))
  )
  // a header below the newest is linked from the nearest verified one
  const h25 = await lc.headerAt(25)
  t.equal(h25.height, 25)
})

t.test('a whole set replaced in one block (announced by next_validators_hash) links; unannounced, refused', async t => {
  const sets = Array.from({ length: 40 }, (_, i) => (i < 20 ? A : B))
  const { factory } = fakeTransport(synthChain(sets))
  const lc = LightClient.create({ genesis: genesisOf(A), rpcs: ['fake:'], transport: factory, now: () => T0 + 41_000 })
  const h = await lc.verifiedHeader()
  t.equal(h.height, 40, 'bisection reaches block 20 → 21, where A handed over to B')
  // next_validators_hash broken at the switch: refused
  const broken = synthChain(sets).map((b, i) => {
    if (i !== 19) return b
    const header = { ...b.header, nextValidatorsHash: validatorSetHash(sortValidators(A.map(k => k.v))) }
    return { ...b, header, hash: headerHash(header) }
  })
  const f2 = fakeTransport(broken)
  const lc2 = LightClient.create({
    genesis: genesisOf(A),
    rpcs: ['fake:'],
    transport: f2.factory,
    now: () => T0 + 41_000
  })
  await t.rejects(lc2.verifiedHeader(), /validators_hash of block 21 is not the trusted header's next_validators_hash/)
})

t.test('trusting period: a genesis older than it cannot vouch for a header', async t => {
  const blocks = synthChain(Array.from({ length: 5 }, () => A))
  const { factory } = fakeTransport(blocks)
  const lc = LightClient.create({
    genesis: genesisOf(A),
    rpcs: ['fake:'],
    transport: factory,
    trustingPeriodMs: 3_000,
    maxHeaderAgeMs: 10_000,
    now: () => T0 + 6_000
  })
  await t.rejects(lc.verifiedHeader(), TrustExpiredError)
})

t.test('a header trusted out of band stands in for an expired genesis', async t => {
  const blocks = synthChain(Array.from({ length: 10 }, () => A))
  const opts = { genesis: genesisOf(A), rpcs: ['fake:'], trustingPeriodMs: 5_000, now: () => T0 + 11_000 }
  const f = fakeTransport(blocks)
  const lc = LightClient.create({ ...opts, transport: f.factory, trust: { height: 7, hash: toHex(blocks[6].hash) } })
  const h = await lc.verifiedHeader()
  t.equal(h.height, 10)
  t.same(f.commits, [10, 7], 'the trusted header is fetched and checked, then block 10 links from it')
  t.same(lc.trusted(), { height: 10, hash: toHex(blocks[9].hash) }, 'what to save for the next run')
  const wrong = LightClient.create({
    ...opts,
    transport: fakeTransport(blocks).factory,
    trust: { height: 7, hash: toHex(blocks[5].hash) }
  })
  await t.rejects(wrong.verifiedHeader(), /not the header trusted at that height/)
  t.throws(() => LightClient.create({ ...opts, transport: f.factory, trust: { height: 0, hash: 'ab' } }), /trust needs/)
})

t.test('time rules: a header from the future, a header not later than its anchor', async t => {
  const blocks = synthChain(Array.from({ length: 5 }, () => A))
  const { factory } = fakeTransport(blocks)
  const future = LightClient.create({
    genesis: genesisOf(A),
    rpcs: ['fake:'],
    transport: factory,
    maxClockDriftMs: 1000,
    now: () => T0 + 2_000
  })
  await t.rejects(future.verifiedHeader(), /from the future/)
  const backwards = synthChain(
    Array.from({ length: 5 }, () => A),
    h => (h === 5 ? T0 + 1000 : T0 + h * 1000)
  )
  const f2 = fakeTransport(backwards)
  const lc = LightClient.create({
    genesis: genesisOf(A),
    rpcs: ['fake:'],
    transport: f2.factory,
    now: () => T0 + 6_000
  })
  t.equal((await lc.headerAt(2)).height, 2)
  await t.rejects(lc.headerAt(5), /not later than verified block/)
})

t.test('a commit for another block, a tampered header field: refused', async t => {
  const blocks = synthChain(Array.from({ length: 5 }, () => A))
  const { factory } = fakeTransport(blocks, (method, _h, r) => {
    if (method !== 'commit') return r
    const c = structuredClone(r) as { signed_header: { header: Record<string, unknown> } }
    c.signed_header.header.app_hash = 'FF'.repeat(32)
    return c
  })
  const lc = LightClient.create({ genesis: genesisOf(A), rpcs: ['fake:'], transport: factory, now: () => T0 + 6_000 })
  await t.rejects(lc.verifiedHeader(), NoVerifiedAnswerError)
  await t.rejects(lc.verifiedHeader(), /quarantined/)
})
