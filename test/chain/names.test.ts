// Names that are JavaScript built-ins (Object.prototype's members) used as query paths, query
// parameters, RPC methods and GET parameters: each is just an unknown name, answered as such.
import t from 'tap'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { initChainHome, startEmbeddedValidator } from '../../chain/validator.ts'
import { createTestOnlyQuorumRules } from '../../chain/testing.ts'
import { TxCode } from '../../chain/types.ts'
import { encode } from '../../encoding/canonical.ts'
import { toHex } from '../../encoding/bytes.ts'
import { makeChain } from './harness.ts'

const BUILTINS = [
  '__proto__',
  'constructor',
  'hasOwnProperty',
  'valueOf',
  'toString',
  'isPrototypeOf',
  'propertyIsEnumerable',
  'toLocaleString',
  '__defineGetter__',
  '__lookupSetter__'
]

t.test('abci_query on the app: a built-in name as path is an unknown path (code 5)', async t => {
  const h = await makeChain()
  t.teardown(() => {
    h.app.close()
  })
  for (const name of BUILTINS) {
    for (const path of [name, `/${name}`]) {
      const r = h.app.query({ path, data: new Uint8Array(0) })
      t.equal(r.code, TxCode.UNKNOWN_TYPE, `${path}: code 5`)
      t.match(r.log, /^unknown query path/, `${path}: says so`)
      t.equal(r.value, undefined, `${path}: no value`)
    }
  }
  t.equal(h.app.query({ path: '/info' }).code, 0, 'a real path still answers')
})

t.test('query parameters named like built-ins are not inherited ones', async t => {
  const h = await makeChain()
  t.teardown(() => {
    h.app.close()
  })
  // /vendor needs "name": a map holding only built-in names does not give it one
  for (const name of BUILTINS) {
    const data = encode({ [name]: 'acme' })
    const r = h.app.query({ path: '/vendor', data })
    t.equal(r.code, TxCode.INVALID_BODY, `/vendor {${name}}: code 9`)
    t.equal(r.log, 'query parameter name is required', `/vendor {${name}}: name is missing`)
  }
  const r = h.app.query({ path: '/seed', data: encode({ nodeId: 'x', constructor: 1 }) })
  t.equal(r.code, 0, '/seed with an extra built-in-named parameter answers')
})

t.test('RPC: built-in method names, paths and parameters', async t => {
  const home = await mkdtemp(join(tmpdir(), 'quorate-chain-names-'))
  t.teardown(async () => {
    await rm(home, { recursive: true, force: true })
  })
  await initChainHome({ home, chainId: 'names' })
  const v = await startEmbeddedValidator({ home, rules: createTestOnlyQuorumRules(), blockIntervalMs: 0 })
  t.teardown(async () => {
    await v.stop()
  })
  const post = async (
    body: unknown
  ): Promise<{
    status: number
    json: {
      id?: unknown
      result?: { response?: { code: number; log: string } }
      error?: { code: number; data: string }
    }
  }> => {
    const res = await fetch(`${v.url}/`, { method: 'POST', body: JSON.stringify(body) })
    return { status: res.status, json: (await res.json()) as never }
  }
  for (const name of BUILTINS) {
    const m = await post({ jsonrpc: '2.0', id: 1, method: name, params: {} })
    t.equal(m.json.error?.code, -32601, `POST method ${name}: method not found`)
    const positional = await post({ jsonrpc: '2.0', id: 2, method: name, params: ['x'] })
    t.equal(positional.json.error?.code, -32601, `POST method ${name} with positional params: method not found`)
    const g = await fetch(`${v.url}/${name}`)
    t.equal(((await g.json()) as { error?: { code: number } }).error?.code, -32601, `GET /${name}: method not found`)
    for (const path of [name, `/${name}`]) {
      const q = await post({ jsonrpc: '2.0', id: 3, method: 'abci_query', params: { path, data: '' } })
      t.equal(q.json.result?.response?.code, TxCode.UNKNOWN_TYPE, `abci_query path ${path}: code 5`)
      t.match(q.json.result?.response?.log, /^unknown query path/)
      const gq = (await (await fetch(`${v.url}/abci_query?path="${encodeURIComponent(path)}"`)).json()) as {
        result?: { response?: { code: number } }
      }
      t.equal(gq.result?.response?.code, TxCode.UNKNOWN_TYPE, `GET abci_query path ${path}: code 5`)
    }
    // a GET parameter with a built-in name is ignored, the real ones still count
    const gp = (await (await fetch(`${v.url}/abci_query?${name}=1&path="/info"`)).json()) as {
      result?: { response?: { code: number } }
    }
    t.equal(gp.result?.response?.code, 0, `GET abci_query with a ${name} parameter answers /info`)
    // POST params object with a built-in-named key besides the real ones
    const pp = await post({
      jsonrpc: '2.0',
      id: 4,
      method: 'abci_query',
      params: { [name]: 'x', path: '/vendor', data: toHex(encode({ name: 'nobody' })) }
    })
    t.equal(pp.json.result?.response?.code, TxCode.NOT_FOUND, `POST abci_query with a ${name} param: a normal answer`)
  }
  // "__proto__" as a JSON key is an own property after JSON.parse: as the params object's only key
  const raw = await fetch(`${v.url}/`, {
    method: 'POST',
    body: '{"jsonrpc":"2.0","id":5,"method":"abci_query","params":{"__proto__":{"path":"/info"}}}'
  })
  const rj = (await raw.json()) as { result?: { response?: { code: number } } }
  t.equal(rj.result?.response?.code, TxCode.UNKNOWN_TYPE, 'a params.__proto__ object does not supply path')
})
