// Fuzz of the light client's RPC JSON decoders and of what it accepts: random JSON and random
// mutations of genuine answers (the embedded validator's RPC methods, in process) must either be
// refused with our errors or change nothing the client returns.
import t from 'tap'
import { createRpcMethods } from '../../chain/rpc-methods.ts'
import { generateChainKey } from '../../chain/keys.ts'
import { QuorateError } from '../../encoding/errors.ts'
import { toHex } from '../../encoding/bytes.ts'
import { LightClient, type RpcTransport, type VerifiedValue } from '../../chain/light/index.ts'
import { decodeQuery, decodeSignedHeader, decodeValidatorsPage, RpcAnswerError } from '../../chain/light/rpc.ts'
import { makeChain } from './harness.ts'

/** A small deterministic PRNG (mulberry32): a failure can be replayed from its seed. */
function rng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let x = Math.imul(a ^ (a >>> 15), 1 | a)
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}

function randomJson(r: () => number, depth = 0): unknown {
  const pick = Math.floor(r() * (depth > 3 ? 6 : 8))
  switch (pick) {
    case 0:
      return null
    case 1:
      return r() < 0.5
    case 2:
      return [0, -1, 1.5, 2 ** 53, 1e308, Number.NaN][Math.floor(r() * 6)]
    case 3:
      return ['', '0', '-1', '00', 'AB', 'zz', '9'.repeat(30), '2026-13-40T25:00:00Z', 'x'.repeat(2000)][
        Math.floor(r() * 9)
      ]
    case 4:
      return String(Math.floor(r() * 1e6))
    case 5:
      return Buffer.from(Array.from({ length: Math.floor(r() * 40) }, () => Math.floor(r() * 256))).toString('hex')
    case 6:
      return Array.from({ length: Math.floor(r() * 4) }, () => randomJson(r, depth + 1))
    default: {
      const o: Record<string, unknown> = {}
      for (const k of ['signed_header', 'header', 'commit', 'response', 'validators', 'height', 'value', 'total'])
        if (r() < 0.3) o[k] = randomJson(r, depth + 1)
      return o
    }
  }
}

/** Every path (list of keys) to a value inside `v`. */
function paths(v: unknown, at: Array<string | number> = [], out: Array<Array<string | number>> = []) {
  out.push(at)
  if (Array.isArray(v)) for (let i = 0; i < v.length; i++) paths(v[i], [...at, i], out)
  else if (v !== null && typeof v === 'object') for (const [k, x] of Object.entries(v)) paths(x, [...at, k], out)
  return out
}
function mutate(v: unknown, r: () => number): unknown {
  const copy = structuredClone(v)
  const ps = paths(copy).filter(p => p.length > 0)
  const p = ps[Math.floor(r() * ps.length)]
  let o = copy as Record<string | number, unknown>
  for (const k of p.slice(0, -1)) o = o[k] as Record<string | number, unknown>
  const last = p[p.length - 1]
  const old = o[last]
  const choice = r()
  if (typeof old === 'string' && old.length > 0 && choice < 0.5) {
    // flip one character of a hex or base64 string (a near miss, the hardest case)
    const i = Math.floor(r() * old.length)
    const alphabet = /^[0-9A-F]+$/.test(old) ? '0123456789ABCDEF' : 'ABCDEFabcdef0123456789+/'
    o[last] = old.slice(0, i) + alphabet[Math.floor(r() * alphabet.length)] + old.slice(i + 1)
  } else if (choice < 0.6 && Array.isArray(o)) o.splice(Number(last), 1)
  else if (choice < 0.7) delete o[last]
  else o[last] = randomJson(r)
  return copy
}

t.test('decoders: random JSON is decoded or refused with RpcAnswerError, nothing else', async t => {
  const r = rng(1)
  let refused = 0
  for (let i = 0; i < 3000; i++) {
    const v = randomJson(r)
    for (const d of [decodeSignedHeader, decodeValidatorsPage, decodeQuery]) {
      try {
        d(v)
      } catch (err) {
        if (!(err instanceof RpcAnswerError)) throw err
        refused++
      }
    }
  }
  t.ok(refused > 8000, `refused ${refused} of 9000`)
})

t.test('mutated genuine answers: refused, or the same verified value', async t => {
  const h = await makeChain()
  const k = await generateChainKey()
  t.equal(h.run('vendor.register', { name: 'acme' }, k).code, 0)
  h.block([])
  h.block([])
  const methods = createRpcMethods({ producer: h.producer, kick: () => {}, commitTimeoutMs: 1000, url: () => 'x' })
  const genuine = async (method: string, params: Record<string, unknown>): Promise<unknown> => {
    const m = methods.get(method)
    if (m === undefined) throw new Error(`no method ${method}`)
    return JSON.parse(JSON.stringify(await m.call({ ...params }, false)))
  }
  const honest = LightClient.create({
    genesis: h.genesis,
    rpcs: ['genuine:'],
    now: () => h.clock.now,
    transport: url => ({ url, close: () => {}, call: genuine })
  })
  const truth = (await honest.get('vendor/acme')) as VerifiedValue
  t.ok('value' in truth, 'the genuine answer verifies')
  const r = rng(2)
  let refused = 0
  let same = 0
  for (let i = 0; i < 400; i++) {
    const target = r() < 0.5 ? 'abci_query' : 'commit'
    const transport = (url: string): RpcTransport => ({
      url,
      close: () => {},
      call: async (method, params) => {
        const g = await genuine(method, params)
        return method === target ? mutate(g, r) : g
      }
    })
    const lc = LightClient.create({
      genesis: h.genesis,
      rpcs: ['mutant:'],
      now: () => h.clock.now,
      nextHeaderWaitMs: 0,
      transport
    })
    try {
      const v = await lc.get('vendor/acme')
      if (!('value' in v)) {
        refused++ // "not found" claimed: Absent, never a value
        continue
      }
      t.equal(toHex(v.value), toHex(truth.value), `iteration ${i}: the value is the genuine one`)
      t.equal(toHex(v.header.appHash), toHex(truth.header.appHash))
      t.equal(toHex(v.header.hash), toHex(truth.header.hash))
      same++
    } catch (err) {
      if (!(err instanceof QuorateError)) throw err
      refused++
    }
  }
  t.ok(refused > 200, `refused ${refused}, same value ${same}`)
})
