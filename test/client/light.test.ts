// The client reads the chain through the light client (chain/light): an RPC that lies about a
// node's record — its TLS key and endpoint swapped for a man in the middle's — gets the request
// refused (the proof does not verify against the verified header), and the man in the middle sees
// nothing; with an honest RPC next to the liar the request is served by the genuine node. The
// light client's own attacks (forged proofs, stale headers, too few signatures) are
// test/chain/light*.test.ts.
import t from 'tap'
import { createServer, request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http'
import { createServer as createTlsServer } from 'node:tls'
import { join } from 'node:path'
import { startClientNet, CHAIN_ID } from './net.ts'
import { createClient, lightChainView, NoNodeServedError, UnverifiedChainError } from '../../agent/client/index.ts'
import { LightClient } from '../../chain/light/index.ts'
import { readGenesis } from '../../chain/index.ts'
import { loadTlsIdentity, certificatePem } from '../../agent/tls.ts'
import { decode, encode, type Canonical } from '../../encoding/canonical.ts'
import { toHex, utf8 } from '../../encoding/bytes.ts'

const net = await startClientNet()
t.teardown(async () => {
  await net.stop()
})
await net.publishApp('echo')
const genesis = await readGenesis(join(net.work, 'chain'))
const node = await net.addNode()

// a man in the middle: its own key and certificate (naming the node), counting what it receives
let mitmData = 0
const mitmId = await loadTlsIdentity({ path: join(net.work, 'mitm-light.key'), nodeId: node.nodeId, chainId: CHAIN_ID })
const mitm = createTlsServer(
  {
    minVersion: 'TLSv1.3',
    key: mitmId.key.export({ type: 'pkcs8', format: 'pem' }),
    cert: certificatePem(mitmId.certificate)
  },
  s => {
    s.on('data', (d: Buffer) => {
      mitmData += d.byteLength
    })
    s.on('error', () => {})
  }
)
await new Promise<void>(resolve => mitm.listen(0, '127.0.0.1', resolve))
const mitmUrl = `https://127.0.0.1:${(mitm.address() as { port: number }).port}`

// the lying RPC: relays everything, but answers node/<id> with the record pointing at the MITM
const target = toHex(utf8.encode(`node/${node.nodeId}`))
let lies = 0
const liar = createServer((req: IncomingMessage, res: ServerResponse) => {
  const chunks: Buffer[] = []
  req.on('data', (c: Buffer) => chunks.push(c))
  req.on('end', () => {
    const body = Buffer.concat(chunks)
    const up = httpRequest(
      new URL(req.url ?? '/', net.chainUrl),
      { method: req.method, headers: { 'content-type': 'application/json', 'content-length': body.byteLength } },
      upRes => {
        const out: Buffer[] = []
        upRes.on('data', (c: Buffer) => out.push(c))
        upRes.on('end', () => {
          let text = Buffer.concat(out).toString()
          const call =
            body.byteLength > 0 ? (JSON.parse(body.toString()) as { method?: string; params?: { data?: string } }) : {}
          if (call.method === 'abci_query' && call.params?.data?.toLowerCase() === target) {
            const j = JSON.parse(text) as { result: { response: { value?: string } } }
            const v = j.result.response.value
            if (v !== undefined) {
              const rec = decode(new Uint8Array(Buffer.from(v, 'base64'))) as Record<string, Canonical>
              rec.tlsKey = mitmId.spkiSha256
              rec.endpoint = mitmUrl
              j.result.response.value = Buffer.from(encode(rec)).toString('base64')
              text = JSON.stringify(j)
              lies++
            }
          }
          res.writeHead(upRes.statusCode ?? 502, { 'content-type': 'application/json' })
          res.end(text)
        })
      }
    )
    up.on('error', () => res.destroy())
    up.end(body)
  })
})
await new Promise<void>(resolve => liar.listen(0, '127.0.0.1', resolve))
const liarUrl = `http://127.0.0.1:${(liar.address() as { port: number }).port}`
t.teardown(() => {
  liar.close()
  mitm.close()
})

t.test('honest RPC through the light client: served by the genuine node', async t => {
  const lc = LightClient.create({ genesis, rpcs: [net.chainUrl] })
  const view = lightChainView(lc, [net.chainUrl])
  const c = createClient({ chain: view })
  t.teardown(() => {
    c.close()
    view.close?.()
    lc.close()
  })
  const r = await c.request('echo', { path: '/light' })
  t.equal(r.status, 200)
  t.equal(r.node, node.nodeId)
  t.equal(c.stats().qcChecks, 1, 'its QC verified with values the light client proved')
})

t.test('a lying RPC alone: refused, nothing reaches the man in the middle', async t => {
  const lc = LightClient.create({ genesis, rpcs: [liarUrl] })
  const view = lightChainView(lc, [liarUrl])
  const c = createClient({ chain: view })
  t.teardown(() => {
    c.close()
    view.close?.()
    lc.close()
  })
  const served = node.served
  const err = await c.request('echo', { path: '/lie' }).catch((e: unknown) => e)
  t.ok(err instanceof UnverifiedChainError || err instanceof NoNodeServedError, String(err))
  t.match((err as Error).message, /chain check failed|no verified answer/)
  t.ok(lies >= 1, 'the liar did lie')
  t.equal(mitmData, 0, 'the man in the middle received nothing')
  t.equal(node.served, served, 'and nothing was sent to the node on a lie either')
})

t.test('a lying RPC next to an honest one: the lie is caught, the honest answer is used', async t => {
  const lc = LightClient.create({ genesis, rpcs: [liarUrl, net.chainUrl] })
  const view = lightChainView(lc, [liarUrl, net.chainUrl])
  const c = createClient({ chain: view })
  t.teardown(() => {
    c.close()
    view.close?.()
    lc.close()
  })
  const r = await c.request('echo', { path: '/both' })
  t.equal(r.status, 200)
  t.equal(r.node, node.nodeId)
  t.equal(r.attempts.at(-1)?.endpoint, node.https.url, 'the genuine endpoint, not the one the liar named')
  t.equal(mitmData, 0)
  t.ok(
    lc.endpoints().some(e => e.url === liarUrl && e.quarantined),
    'the liar is quarantined'
  )
})
