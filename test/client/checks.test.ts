// The client against a real chain and real HTTPS listeners (test/client/net.ts: nodes certified
// by a real QC the chain verified, serving with the TLS key their round bound): genuine nodes
// serve, a man in the middle with its own certificate is refused before any request byte, revoked
// and expired certifications are refused, a tampered QC or member key fails the client's own QC
// check, failover on a dead node and on 503, and a kept-alive connection is not checked again.
import t from 'tap'
import { createServer as createTlsServer, connect as tlsConnect, type TLSSocket } from 'node:tls'
import { join } from 'node:path'
import { startClientNet, CHAIN_ID, type ClientNet } from './net.ts'
import {
  createClient,
  rpcChainView,
  checkNodeRecord,
  checkQc,
  roundFrom,
  NoNodeServedError,
  NodeNotCertifiedError,
  QcCheckError,
  AppNotServableError,
  TlsKeyMismatchError
} from '../../agent/client/index.ts'
import { loadTlsIdentity, certificatePem } from '../../agent/tls.ts'
import { createQuorumRules } from '../../attestation/quorum/index.ts'
import { decode } from '../../encoding/canonical.ts'
import type { NodeRecord } from '../../chain/index.ts'

const net: ClientNet = await startClientNet()
t.teardown(async () => {
  await net.stop()
})
await net.publishApp('echo')
const view = rpcChainView(net.chain)

t.test('genuine nodes: served, the answer names the node, POST bodies and headers pass', async t => {
  const a = await net.addNode()
  const c = createClient({ chain: view })
  t.teardown(() => {
    c.close()
  })
  const r = await c.request('echo', { path: '/hello?x=1', headers: { 'x-test': 'yes' } })
  t.equal(r.status, 200)
  const body = JSON.parse(Buffer.from(r.body).toString()) as Record<string, unknown>
  t.equal(body.node, r.node, 'the node that answered is the one reported')
  t.equal(body.url, '/app/echo/hello?x=1', 'routed to /app/<name><path>')
  t.equal(body.header, 'yes')
  t.ok(r.attempts.length >= 1 && r.attempts.at(-1)?.outcome === 'served')
  t.equal(r.attempts.at(-1)?.node, r.node)
  const p = await c.request('echo', { path: '/', method: 'PUT', body: 'payload' })
  const pb = JSON.parse(Buffer.from(p.body).toString()) as Record<string, unknown>
  t.same([pb.method, pb.body], ['PUT', 'payload'])
  t.ok(a.served >= 1)
  await a.kill()
})

t.test('a kept-alive connection is not checked again', async t => {
  const a = await net.addNode()
  const c = createClient({ chain: view })
  t.teardown(() => {
    c.close()
  })
  // one node only for this client: verifyNode + requestUrl route to exactly this node
  const url = `${a.https.url}/app/echo/one`
  const r1 = await c.requestUrl(url)
  t.equal(r1.status, 200)
  t.equal(r1.node, a.nodeId)
  const s1 = c.stats()
  t.equal(s1.qcChecks, 1, 'the QC was checked once')
  const v1 = await c.verifyNode(a.nodeId)
  const s2 = c.stats()
  t.same([s2.qcChecks, s2.recordChecks], [s1.qcChecks, s1.recordChecks], 'verifyNode answers from the cache')
  t.equal(v1.signers.length >= 3, true, `${v1.signers.length} of ${v1.committee.length} signed`)
  // request() keeps its connections: the second request rides the first one's socket
  const only = createClient({ chain: { ...view, nodeIds: async () => [a.nodeId] } })
  t.teardown(() => {
    only.close()
  })
  await only.request('echo', { path: '/1' })
  const before = only.stats()
  await only.request('echo', { path: '/2' })
  await only.request('echo', { path: '/3' })
  const after = only.stats()
  t.equal(before.tlsHandshakes, 1, 'one pinned handshake for the first request')
  t.equal(after.tlsHandshakes, 1, 'no handshake for the next two')
  t.equal(after.qcChecks, 1, 'no QC check for the next two')
  t.equal(after.recordChecks, before.recordChecks, 'no record read within recheckMs')
  t.equal(after.requests, 3)
  await a.kill()
})

t.test('a man in the middle with its own certificate is refused before any request byte', async t => {
  // the MITM listens where the node's endpoint points, with its own key — even naming the node —
  // and relays to the genuine node
  const mitmBytes: number[] = []
  let relayed = 0
  const proxy = createTlsServer(
    {
      minVersion: 'TLSv1.3',
      ...(await (async () => {
        const id = await loadTlsIdentity({ path: join(net.work, 'mitm.key'), nodeId: 'mitm', chainId: CHAIN_ID })
        return { key: id.key.export({ type: 'pkcs8', format: 'pem' }), cert: certificatePem(id.certificate) }
      })())
    },
    (s: TLSSocket) => {
      const up = tlsConnect({ host: '127.0.0.1', port: upstreamPort, rejectUnauthorized: false })
      s.on('data', (d: Buffer) => {
        mitmBytes.push(d.byteLength)
        relayed += d.byteLength
        up.write(d)
      })
      up.on('data', (d: Buffer) => s.write(d))
      s.on('close', () => up.destroy())
      s.on('error', () => up.destroy())
      up.on('error', () => s.destroy())
    }
  )
  await new Promise<void>(resolve => proxy.listen(0, '127.0.0.1', resolve))
  t.teardown(() => {
    proxy.close()
  })
  const proxyPort = (proxy.address() as { port: number }).port
  // the genuine node listens elsewhere; the endpoint it registered is the proxy's address
  const genuine = await net.addNode({ endpoint: `https://127.0.0.1:${proxyPort}` })
  const upstreamPort = genuine.https.port
  const c = createClient({ chain: { ...view, nodeIds: async () => [genuine.nodeId] } })
  t.teardown(() => {
    c.close()
  })
  const err = await c.request('echo', { path: '/secret' }).catch((e: unknown) => e)
  t.ok(err instanceof NoNodeServedError, String(err))
  const e = err as NoNodeServedError
  t.match(e.message, /tls-key check failed/)
  t.match(e.message, /not the certified one/)
  t.same(mitmBytes, [], 'the man in the middle received no application data')
  t.equal(relayed, 0)
  t.equal(genuine.served, 0, 'the genuine node behind it saw no request')
  // the same over a URL
  const u = await c.requestUrl(`https://127.0.0.1:${proxyPort}/app/echo/x`).catch((x: unknown) => x)
  t.ok(u instanceof NoNodeServedError || u instanceof TlsKeyMismatchError || u instanceof Error)
  t.equal(relayed, 0, 'nor through requestUrl')
  await genuine.kill()
})

t.test('revoked: the client refuses the node (and says why)', async t => {
  const a = await net.addNode({ os: 'os-to-revoke' })
  const c = createClient({ chain: { ...view, nodeIds: async () => [a.nodeId] }, recheckMs: 0 })
  t.teardown(() => {
    c.close()
  })
  t.equal((await c.request('echo')).status, 200, 'served while certified')
  await net.revokeOs('os-to-revoke')
  const served = a.served
  const err = await c.request('echo').catch((e: unknown) => e)
  t.ok(err instanceof NoNodeServedError, String(err))
  t.match((err as Error).message, /certification check failed: status is revoked/)
  t.equal(a.served, served, 'nothing sent after the revocation')
  const strict = createClient({ chain: view, minSecurityBits: 40 })
  t.teardown(() => {
    strict.close()
  })
  const weak = await net.addNode()
  await t.rejects(strict.verifyNode(weak.nodeId), /reached \d+ bits of security; this client requires 40/)
  await weak.kill()
  const direct = await c.verifyNode(a.nodeId).catch((e: unknown) => e)
  t.ok(direct instanceof NodeNotCertifiedError)
  await a.kill()
})

t.test('a newer record is noticed: a new round bound another key, the endpoint still serves the old one', async t => {
  const a = await net.addNode()
  const c = createClient({ chain: { ...view, nodeIds: async () => [a.nodeId] }, recheckMs: 0 })
  t.teardown(() => {
    c.close()
  })
  t.equal((await c.request('echo')).status, 200)
  t.equal(c.stats().qcChecks, 1)
  const other = await loadTlsIdentity({ path: join(net.work, 'rotated.key'), nodeId: a.nodeId, chainId: CHAIN_ID })
  await net.certify(a, other.spkiSha256)
  const served = a.served
  const err = await c.request('echo').catch((e: unknown) => e)
  t.ok(err instanceof NoNodeServedError, String(err))
  t.match((err as Error).message, /tls-key check failed/)
  t.equal(c.stats().qcChecks, 2, 'the changed record was checked again, QC included')
  t.equal(a.served, served, 'the kept-alive connection to the old key was dropped, not used')
  await a.kill()
})

t.test('the QC check: a tampered QC or a member key that is not the registered one fails', async t => {
  const a = await net.addNode()
  const node = checkNodeRecord(a.nodeId, await view.read(`node/${a.nodeId}`))
  const qcBytes = (await view.read(`qc/${a.nodeId}`)).value
  const round = roundFrom(a.nodeId, node.round, (await view.read(`req/${a.nodeId}`)).value as Uint8Array, 'req')
  const keys = new Map<string, Uint8Array>()
  for (const m of round.committee ?? []) {
    const r = decode((await view.read(`node/${m}`)).value as Uint8Array) as unknown as NodeRecord
    keys.set(m, r.blsPublicKey as Uint8Array)
  }
  const rules = createQuorumRules()
  const ok = checkQc(node, { chainId: CHAIN_ID, qcBytes, round, memberKeys: keys, rules })
  t.ok(ok.signers.length >= ok.threshold)
  // a QC other than the one the record names
  const q = decode(qcBytes as Uint8Array) as Record<string, unknown>
  const forged = (q.qc as Uint8Array).slice()
  forged[forged.length - 1] ^= 1
  const { encode } = await import('../../encoding/canonical.ts')
  const tampered = encode({ ...(q as Record<string, never>), qc: forged })
  t.throws(() => checkQc(node, { chainId: CHAIN_ID, qcBytes: tampered, round, memberKeys: keys, rules }), QcCheckError)
  // the recorded QC, but one member's key swapped for another's: the aggregate does not verify
  const ids = [...keys.keys()]
  const swapped = new Map(keys)
  swapped.set(ids[0], keys.get(ids[1]) as Uint8Array)
  const e = (() => {
    try {
      checkQc(node, { chainId: CHAIN_ID, qcBytes, round, memberKeys: swapped, rules })
      return undefined
    } catch (err) {
      return err
    }
  })()
  t.ok(e instanceof QcCheckError, 'refused')
  // the kept committee in another order than its seed draws
  const reordered = { ...round, committee: [...(round.committee ?? [])].reverse() }
  t.throws(
    () => checkQc(node, { chainId: CHAIN_ID, qcBytes, round: reordered, memberKeys: keys, rules }),
    /not in the order its seed draws/
  )
  // another chain id: the verdicts were signed for this one
  t.throws(() => checkQc(node, { chainId: 'other-chain', qcBytes, round, memberKeys: keys, rules }), QcCheckError)
  await a.kill()
})

t.test('failover: a node that died between requests, and a busy node', async t => {
  const a = await net.addNode()
  const b = await net.addNode()
  const c = createClient({ chain: { ...view, nodeIds: async () => [a.nodeId, b.nodeId] } })
  t.teardown(() => {
    c.close()
  })
  const first = await c.request('echo', { path: '/1' })
  t.equal(first.status, 200)
  const dead = first.node === a.nodeId ? a : b
  const alive = dead === a ? b : a
  await dead.kill()
  const second = await c.request('echo', { path: '/2' })
  t.equal(second.status, 200)
  t.equal(second.node, alive.nodeId, 'the other node answered')
  t.same(
    second.attempts.map(x => [x.node, x.outcome]),
    [
      [dead.nodeId, 'unreachable'],
      [alive.nodeId, 'served']
    ]
  )
  // busy (503): the client moves on; when every node is busy, the last answer is the result
  const d = await net.addNode()
  d.status = 503
  const c2 = createClient({ chain: { ...view, nodeIds: async () => [d.nodeId, alive.nodeId] } })
  t.teardown(() => {
    c2.close()
  })
  const r = await c2.request('echo')
  t.equal(r.node, alive.nodeId)
  t.ok(r.attempts.some(x => x.node === d.nodeId && x.outcome === 'busy') || r.attempts.length === 1)
  alive.status = 500
  const r2 = await c2.request('echo')
  t.ok(r2.status === 500 || r2.status === 503, `every node failed: the last answer (${r2.status}) is returned`)
  t.same(r2.attempts.map(x => x.outcome).sort(), ['busy', 'server-error'])
  await alive.kill()
  await d.kill()
})

t.test('every node busy with a short Retry-After: waited for once, then served', async t => {
  const a = await net.addNode()
  a.queue.push(503)
  a.retryAfter = 1
  const c = createClient({ chain: { ...view, nodeIds: async () => [a.nodeId] } })
  t.teardown(() => {
    c.close()
  })
  const r = await c.request('echo')
  t.equal(r.status, 200)
  t.same(
    r.attempts.map(x => [x.outcome, x.status]),
    [
      ['busy', 503],
      ['served', 200]
    ]
  )
  // a Retry-After beyond maxRetryAfterMs is not waited for: the 503 is the answer
  a.queue.push(503)
  a.retryAfter = 3600
  const busy = await c.request('echo')
  t.equal(busy.status, 503)
  t.same(
    busy.attempts.map(x => x.outcome),
    ['busy']
  )
  await a.kill()
})

t.test('a large list: at most maxCandidates records are read, checked nodes first', async t => {
  const a = await net.addNode()
  const b = await net.addNode()
  const c = createClient({ chain: { ...view, nodeIds: async () => [a.nodeId, b.nodeId] }, maxCandidates: 1 })
  t.teardown(() => {
    c.close()
  })
  const first = await c.request('echo')
  t.equal(c.stats().recordChecks, 1, 'one record read for two listed nodes')
  const again = await c.request('echo')
  t.equal(again.node, first.node, 'the node already checked is kept')
  t.equal(c.stats().recordChecks, 1)
  await a.kill()
  await b.kill()
})

t.test('an app that is not on chain is refused before any node is tried', async t => {
  const c = createClient({ chain: view })
  t.teardown(() => {
    c.close()
  })
  await t.rejects(c.request('no-such-app'), AppNotServableError)
  await t.rejects(c.request('Bad Name'), /not a valid name/)
})

t.test('expired: a certification past its expiry at the verified block time is refused', async t => {
  const short = await startClientNet({ certification: { certTtlMs: 1500 } })
  t.teardown(async () => {
    await short.stop()
  })
  await short.publishApp('echo')
  const a = await short.addNode()
  const v = rpcChainView(short.chain)
  // the RPC's list of certified nodes leaves an expired one out: name it, to see the client's own check
  const c = createClient({ chain: { ...v, nodeIds: async () => [a.nodeId] }, recheckMs: 0 })
  t.teardown(() => {
    c.close()
  })
  const rec = decode((await v.read(`node/${a.nodeId}`)).value as Uint8Array) as unknown as NodeRecord
  // wait for the chain's own clock (block time) to pass the expiry: an event, not a sleep
  for (;;) {
    const r = await v.read(`node/${a.nodeId}`)
    if (r.time > (rec.expiresAt ?? 0)) break
    await short.chain.waitForHeight(r.height + 1)
  }
  const err = await c.request('echo').catch((e: unknown) => e)
  t.ok(err instanceof NoNodeServedError || err instanceof NodeNotCertifiedError, String(err))
  t.match((err as Error).message, /certification expired/)
  t.equal(a.served, 0)
  await a.kill()
})

t.test('Retry-After: seconds or an HTTP date', async t => {
  const { retryAfterMs } = await import('../../agent/client/index.ts')
  t.equal(retryAfterMs('2'), 2000)
  t.equal(retryAfterMs(['0']), 0)
  t.equal(retryAfterMs(undefined), undefined)
  t.equal(retryAfterMs('soon'), undefined)
  t.equal(retryAfterMs(new Date(Date.now() - 60_000).toUTCString()), 0, 'a date in the past: now')
  const later = retryAfterMs(new Date(Date.now() + 3_600_000).toUTCString()) ?? 0
  t.ok(later > 3_500_000 && later <= 3_600_000)
})
