// JSON-RPC 2.0 and CometBFT's URI forms at the embedded validator's RPC: what a request must be,
// which ids come back, what params are refused, which HTTP status a GET error gets, and the
// argument forms (0x-hex, quoted string) a GET takes.
import t from 'tap'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { request } from 'node:http'
import { initChainHome, startEmbeddedValidator } from '../../chain/validator.ts'
import { createTestOnlyQuorumRules } from '../../chain/testing.ts'
import { generateChainKey } from '../../chain/keys.ts'
import { buildTx } from '../../chain/tx.ts'
import { TxCode } from '../../chain/types.ts'
import { jsonDepthExceeds } from '../../chain/rpc-jsonrpc.ts'
import { sha256, toHex, utf8 } from '../../encoding/bytes.ts'
import { encode } from '../../encoding/canonical.ts'

// any: the answers are JSON of many shapes, read field by field
interface Answer {
  status: number
  text: string
  json: any
}

const home = await mkdtemp(join(tmpdir(), 'quorate-jsonrpc-'))
t.teardown(async () => {
  await rm(home, { recursive: true, force: true })
})
await initChainHome({ home, chainId: 'jsonrpc' })
const v = await startEmbeddedValidator({ home, rules: createTestOnlyQuorumRules(), blockIntervalMs: 0 })
t.teardown(async () => {
  await v.stop()
})

async function post(body: string): Promise<Answer> {
  const res = await fetch(`${v.url}/`, { method: 'POST', body })
  const text = await res.text()
  return { status: res.status, text, json: text === '' ? undefined : JSON.parse(text) }
}
async function get(path: string): Promise<Answer> {
  const res = await fetch(`${v.url}${path}`)
  const text = await res.text()
  return {
    status: res.status,
    text,
    json: res.headers.get('content-type')?.startsWith('application/json') === true ? JSON.parse(text) : undefined
  }
}

t.test('a deeply nested id is refused before it is parsed, with no stack overflow', async t => {
  for (const depth of [17, 1000, 100_000]) {
    const r = await post(`{"jsonrpc":"2.0","method":"health","id":${'['.repeat(depth)}${']'.repeat(depth)}}`)
    t.equal(r.status, 400, `${depth} deep: 400`)
    t.equal(r.json.error.code, -32600, `${depth} deep: invalid request`)
    t.equal(r.json.id, null, 'id not echoed')
    t.match(r.json.error.data, /nested deeper than 16 levels/)
  }
  // a string holding brackets is not nesting
  const s = await post(`{"jsonrpc":"2.0","method":"health","id":"${'['.repeat(1000)}\\"{{"}`)
  t.equal(s.json.id, `${'['.repeat(1000)}"{{`, 'brackets in a string id do not count')
  t.equal(jsonDepthExceeds('[[["\\"]]]]]]"]]]', 3), false)
  t.equal(jsonDepthExceeds('[[[[1]]]]', 3), true)
  const health = await post('{"jsonrpc":"2.0","id":1,"method":"health"}')
  t.same(health.json, { jsonrpc: '2.0', id: 1, result: {} }, 'the server still answers')
})

t.test('ids: strings, numbers and null are echoed; other types refused and not echoed', async t => {
  for (const id of ['abc', 7, 0, -3, 1.5, null, '']) {
    const r = await post(JSON.stringify({ jsonrpc: '2.0', id, method: 'health' }))
    t.equal(r.status, 200)
    t.same(r.json, { jsonrpc: '2.0', id, result: {} }, `id ${JSON.stringify(id)} echoed`)
  }
  for (const id of [{ a: 1 }, [1], true, false]) {
    const r = await post(JSON.stringify({ jsonrpc: '2.0', id, method: 'health' }))
    t.equal(r.status, 400)
    t.equal(r.json.error.code, -32600, `id ${JSON.stringify(id)}: invalid request`)
    t.equal(r.json.id, null, `id ${JSON.stringify(id)} not echoed`)
    t.notOk('result' in r.json, 'nothing was run')
  }
})

t.test('"jsonrpc": "2.0" is required', async t => {
  for (const body of [
    '{"id":1,"method":"health"}',
    '{"jsonrpc":"1.0","id":1,"method":"health"}',
    '{"jsonrpc":2,"id":1,"method":"health"}'
  ]) {
    const r = await post(body)
    t.equal(r.json.error?.code, -32600, `${body}: invalid request`)
    t.equal(r.json.id, 1, 'answered to its id')
    t.match(r.json.error.data, /"jsonrpc" must be exactly "2.0"/)
  }
  // a tx sent without it is not submitted
  const k = await generateChainKey()
  const tx = buildTx('vendor.register', { name: 'nojsonrpc' }, k, 0, v.chainId)
  await post(JSON.stringify({ id: 1, method: 'broadcast_tx_sync', params: { tx: Buffer.from(tx).toString('base64') } }))
  t.equal(v.producer.mempoolSize, 0, 'nothing entered the mempool')
  t.equal(v.app.query({ path: '/vendor', data: encode({ name: 'nojsonrpc' }) }).code, TxCode.NOT_FOUND)
  for (const [body, what] of [
    ['null', 'null'],
    ['7', 'a number'],
    ['{"jsonrpc":"2.0","id":1}', 'no method'],
    ['{"jsonrpc":"2.0","id":1,"method":5}', 'method 5']
  ] as const) {
    const r = await post(body)
    t.equal(r.json.error?.code, -32600, `${what}: invalid request`)
  }
  const p = await post('{"jsonrpc":"2.0","id":1,')
  t.equal(p.status, 400)
  t.equal(p.json.error.code, -32700, 'not JSON: parse error')
})

t.test('params: only an object or an array; positional params bounded', async t => {
  for (const params of ['"abc"', '5', 'true']) {
    const r = await post(`{"jsonrpc":"2.0","id":9,"method":"block","params":${params}}`)
    t.equal(r.json.error?.code, -32602, `block params ${params}: invalid params`)
    t.notOk('result' in r.json, `block params ${params}: no latest block instead`)
  }
  const tooMany = await post('{"jsonrpc":"2.0","id":9,"method":"block","params":["1","2"]}')
  t.equal(tooMany.json.error?.code, -32602, 'more positional params than the method takes')
  const ok = await post('{"jsonrpc":"2.0","id":9,"method":"status","params":null}')
  t.ok(ok.json.result?.sync_info, 'params null = none')
  for (const [params, what] of [
    ['{"height":"abc"}', 'height abc'],
    ['{"height":-1}', 'height -1'],
    ['{"height":1.5}', 'height 1.5'],
    ['{"height":{}}', 'height {}']
  ]) {
    const r = await post(`{"jsonrpc":"2.0","id":9,"method":"block","params":${params}}`)
    t.equal(r.json.error?.code, -32602, `${what}: invalid params`)
  }
  const path = await post('{"jsonrpc":"2.0","id":9,"method":"abci_query","params":{"path":5}}')
  t.equal(path.json.error?.code, -32602, 'abci_query path 5: invalid params, not an empty path')
  const prove = await post('{"jsonrpc":"2.0","id":9,"method":"abci_query","params":{"path":"/info","prove":"yes"}}')
  t.equal(prove.json.error?.code, -32602, 'prove "yes": invalid params')
})

t.test('notifications and batches', async t => {
  const n = await post('{"jsonrpc":"2.0","method":"health"}')
  t.equal(n.status, 204, 'a notification gets no answer')
  t.equal(n.text, '')
  const b = await post(
    '[{"jsonrpc":"2.0","id":1,"method":"health"},{"jsonrpc":"2.0","method":"health"},{"jsonrpc":"2.0","id":"x","method":"nope"},{"id":3,"method":"health"},5]'
  )
  t.equal(b.status, 200)
  t.same(
    b.json,
    [
      { jsonrpc: '2.0', id: 1, result: {} },
      { jsonrpc: '2.0', id: 'x', error: { code: -32601, message: 'Method not found', data: 'unknown method "nope"' } },
      {
        jsonrpc: '2.0',
        id: 3,
        error: { code: -32600, message: 'Invalid Request', data: '"jsonrpc" must be exactly "2.0"' }
      },
      {
        jsonrpc: '2.0',
        id: null,
        error: {
          code: -32600,
          message: 'Invalid Request',
          data: 'a request must be a JSON object { jsonrpc: "2.0", id, method, params }'
        }
      }
    ],
    'one answer per request that has an id, in order'
  )
  const empty = await post('[]')
  t.equal(empty.json.error?.code, -32600, 'an empty batch is an invalid request')
  const big = await post(
    JSON.stringify(Array.from({ length: 101 }, (_, i) => ({ jsonrpc: '2.0', id: i, method: 'health' })))
  )
  t.equal(big.json.error?.code, -32600, 'a batch of 101 is refused')
})

t.test('GET errors: 404 unknown method, 400 bad params, 500 the method failed; 405 other HTTP methods', async t => {
  const cases: Array<[string, number, number]> = [
    ['/nope', 404, -32601],
    ['/block?height=abc', 400, -32602],
    ['/block?height=-1', 400, -32602],
    ['/broadcast_tx_sync?tx=zz', 400, -32602],
    ['/broadcast_tx_sync?tx=0xzz', 400, -32602],
    ['/broadcast_tx_sync?tx="unterminated\\"', 400, -32602],
    ['/tx?hash=0x' + '00'.repeat(32), 500, -32603],
    ['/block?height=999999', 500, -32603]
  ]
  for (const [path, status, code] of cases) {
    const r = await get(path)
    t.equal(r.status, status, `${path}: HTTP ${status}`)
    t.equal(r.json.error?.code, code, `${path}: ${code}`)
    t.equal(r.json.id, -1, 'URI answers carry id -1, as CometBFT')
  }
  const ok = await get('/health')
  t.equal(ok.status, 200)
  const list = await get('/')
  t.equal(list.status, 200)
  t.match(list.text, /\/abci_query\?path=_&data=_&height=_&prove=_/, 'GET / lists the endpoints')
  const put = await fetch(`${v.url}/`, { method: 'PUT', body: '{}' })
  t.equal(put.status, 405)
  t.equal(put.headers.get('allow'), 'GET, POST')
  const postElsewhere = await fetch(`${v.url}/status`, { method: 'POST', body: '{}' })
  t.equal(postElsewhere.status, 405, 'JSON-RPC is POSTed to / only')
})

t.test('GET broadcast_tx_sync takes 0x-hex and quoted strings, as CometBFT documents', async t => {
  const k = await generateChainKey()
  const tx = buildTx('vendor.register', { name: 'gethex' }, k, 0, v.chainId)
  const hex = await get(`/broadcast_tx_sync?tx=0x${toHex(tx)}`)
  t.equal(hex.status, 200)
  t.equal(hex.json.result.code, 0, '0x-hex: the tx is accepted')
  t.equal(hex.json.result.hash, toHex(sha256(tx)).toUpperCase())
  const upper = await get(
    `/broadcast_tx_sync?tx=0X${toHex(buildTx('vendor.register', { name: 'gethex2' }, k, 1, v.chainId)).toUpperCase()}`
  )
  t.equal(upper.json.result.code, 0, '0X and upper-case digits')
  // a quoted string is its UTF-8 bytes, JSON escapes applied: not a valid tx, but exactly those bytes
  for (const [arg, bytes] of [
    ['"name=satoshi"', 'name=satoshi'],
    ['"a\\"b\\u0001"', 'a"b\u0001'],
    ['"caf\u00e9"', 'café']
  ] as const) {
    const r = await get(`/broadcast_tx_sync?tx=${encodeURIComponent(arg)}`)
    t.equal(r.status, 200, `${arg}: answered`)
    t.equal(r.json.result.code, TxCode.MALFORMED, `${arg}: checked as a (malformed) tx`)
    t.equal(
      r.json.result.hash,
      toHex(sha256(utf8.encode(bytes))).toUpperCase(),
      `${arg}: the tx was exactly ${JSON.stringify(bytes)}`
    )
  }
  const bare = await get(`/broadcast_tx_sync?tx=${Buffer.from(tx).toString('base64url')}`)
  t.equal(bare.status, 400, 'a bare value is refused: it could be base64 or hex')
  t.match(bare.json.error.data, /0x-prefixed hex .* or a quoted string/)
  // other arguments: quoted or 0x-hex strings, quoted integers
  const q = await get(`/abci_query?path=0x${toHex(utf8.encode('/info'))}`)
  t.equal(q.json.result.response.code, 0, 'a 0x-hex string argument')
  const b = await get('/block?height="1"')
  t.equal(b.json.result.block.header.height, '1', 'a quoted integer')
})

t.test('a request body is bounded before it is read', async t => {
  // declared too large: answered at once, without sending the body
  const r = await new Promise<{ status: number; connection: string | undefined }>((resolve, reject) => {
    const req = request(
      `${v.url}/`,
      { method: 'POST', headers: { 'content-length': String(10 * 1024 * 1024) } },
      res => {
        res.resume()
        resolve({ status: res.statusCode ?? 0, connection: res.headers.connection })
        req.destroy()
      }
    )
    req.on('error', reject)
    req.flushHeaders()
  })
  t.equal(r.status, 413, 'a declared 10 MiB body is refused from its Content-Length')
  t.equal(r.connection, 'close')
})
