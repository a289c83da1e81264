// Red team (issues 13, 14): attacks on the client's checks, against a real embedded chain with
// nodes certified by real QCs and serving over agent/tls.ts's HTTPS listener (test/client/net.ts).
//   - a QC from another round of the same node, or of another node, or the round record of
//     another round: refused by the client's own QC check;
//   - a record read under one node's key that holds another's: refused;
//   - certificate tricks for `requestUrl` (quorate curl): two node identity extensions, trailing
//     bytes, an Ed25519 key naming a genuine node, a node id shaped like a state key path — none
//     gets a byte of the request;
//   - an app name of the longest length the chain allows is requestable (the client's own name
//     check once stopped one character short of the chain's).
import t from 'tap'
import { createServer as createTlsServer, type TLSSocket } from 'node:tls'
import { generateKeyPairSync, sign, createPublicKey, type KeyObject } from 'node:crypto'
import { startClientNet, CHAIN_ID, type ClientNet } from '../client/net.ts'
import {
  createClient,
  rpcChainView,
  checkNodeRecord,
  checkQc,
  roundFrom,
  NoNodeServedError,
  QcCheckError,
  NodeCheckError
} from '../../agent/client/index.ts'
import { NODE_IDENTITY_OID, parseNodeCertificate, certificatePem, TlsCertificateError } from '../../agent/tls.ts'
import { createQuorumRules } from '../../attestation/quorum/index.ts'
import { decode } from '../../encoding/canonical.ts'
import * as der from '../../encoding/der.ts'
import type { NodeRecord } from '../../chain/index.ts'

const net: ClientNet = await startClientNet()
t.teardown(async () => {
  await net.stop()
})
await net.publishApp('echo')
const view = rpcChainView(net.chain)
const rules = createQuorumRules()

async function memberKeys(committee: readonly string[]): Promise<Map<string, Uint8Array>> {
  const keys = new Map<string, Uint8Array>()
  for (const m of committee) {
    const r = decode((await view.read(`node/${m}`)).value as Uint8Array) as unknown as NodeRecord
    keys.set(m, r.blsPublicKey as Uint8Array)
  }
  return keys
}

t.test('a QC of another round, of another node, or another round record: refused', async t => {
  const a = await net.addNode()
  const b = await net.addNode()
  const oldQc = (await view.read(`qc/${a.nodeId}`)).value as Uint8Array
  const oldReq = (await view.read(`req/${a.nodeId}`)).value as Uint8Array
  const first = checkNodeRecord(a.nodeId, await view.read(`node/${a.nodeId}`))
  // a new passing round for the same node and key: the record names round 2 and its QC
  await net.certify(a)
  const node = checkNodeRecord(a.nodeId, await view.read(`node/${a.nodeId}`))
  t.not(node.round, first.round, 'the node was certified again')
  const qcBytes = (await view.read(`qc/${a.nodeId}`)).value as Uint8Array
  const round = roundFrom(a.nodeId, node.round, (await view.read(`req/${a.nodeId}`)).value as Uint8Array, 'req')
  const keys = await memberKeys(round.committee ?? [])
  t.ok(checkQc(node, { chainId: CHAIN_ID, qcBytes, round, memberKeys: keys, rules }), 'the genuine QC verifies')

  // the earlier round's QC (genuine, correctly signed — for its own round) replayed
  t.throws(
    () => checkQc(node, { chainId: CHAIN_ID, qcBytes: oldQc, round, memberKeys: keys, rules }),
    QcCheckError,
    'an old round QC'
  )
  // the earlier round's record passed off as the certifying round's
  t.throws(() => roundFrom(a.nodeId, node.round, oldReq, 'req'), QcCheckError, 'an old round record')
  // node b's QC (same shape, genuine for b) presented for a
  const bQc = (await view.read(`qc/${b.nodeId}`)).value as Uint8Array
  t.throws(
    () => checkQc(node, { chainId: CHAIN_ID, qcBytes: bQc, round, memberKeys: keys, rules }),
    QcCheckError,
    "another node's QC"
  )
  // b's round record presented for a
  const bReq = (await view.read(`req/${b.nodeId}`)).value as Uint8Array
  t.throws(() => roundFrom(a.nodeId, node.round, bReq, 'req'), QcCheckError, "another node's round")
  // b's node record presented as a's (an RPC answering one key with another key's value)
  const bRead = await view.read(`node/${b.nodeId}`)
  t.throws(() => checkNodeRecord(a.nodeId, bRead), /holds the record of/, "another node's record")
  await a.kill()
  await b.kill()
})

const ECDSA_SHA256 = '1.2.840.10045.4.3.2'
const ED25519 = '1.3.101.112'

/** A self-signed certificate with the given extensions (raw), signed with `key` (P-256 or Ed25519). */
function craft(key: KeyObject, extensions: Uint8Array[]): Uint8Array {
  const ed = key.asymmetricKeyType === 'ed25519'
  const algorithm = der.sequence(der.oid(ed ? ED25519 : ECDSA_SHA256))
  const name = der.sequence(der.set(der.sequence(der.oid('2.5.4.3'), der.utf8String('quorate node red team'))))
  const now = Date.now()
  const tbs = der.sequence(
    der.explicit(0, der.integer(2)),
    der.integer(0x1234),
    algorithm,
    name,
    der.sequence(der.time(new Date(now - 3600_000)), der.time(new Date(now + 3600_000))),
    name,
    new Uint8Array(createPublicKey(key).export({ type: 'spki', format: 'der' })),
    der.explicit(3, der.sequence(...extensions))
  )
  const sig = ed ? sign(null, tbs, key) : sign('sha256', tbs, { key, dsaEncoding: 'der' })
  return der.sequence(tbs, algorithm, der.bitString(new Uint8Array(sig)))
}
const identity = (nodeId: string, chainId = CHAIN_ID): Uint8Array =>
  der.sequence(
    der.oid(NODE_IDENTITY_OID),
    der.octetString(der.sequence(der.integer(1), der.utf8String(nodeId), der.utf8String(chainId)))
  )

/** A TLS 1.3 server with `cert`; counts application bytes it receives. */
async function impostor(
  key: KeyObject,
  cert: Uint8Array
): Promise<{ url: string; bytes: () => number; close(): void }> {
  let bytes = 0
  const server = createTlsServer(
    { key: key.export({ type: 'pkcs8', format: 'pem' }), cert: certificatePem(cert), minVersion: 'TLSv1.3' },
    (s: TLSSocket) => {
      s.on('data', (d: Buffer) => {
        bytes += d.byteLength
      })
      s.on('error', () => {})
    }
  )
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  return {
    url: `https://127.0.0.1:${(server.address() as { port: number }).port}`,
    bytes: () => bytes,
    close: () => {
      server.close()
    }
  }
}

t.test('certificate tricks against requestUrl (quorate curl): no request byte reaches the server', async t => {
  const a = await net.addNode()
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey
  const ed = generateKeyPairSync('ed25519').privateKey
  const c = createClient({ chain: view })
  t.teardown(() => {
    c.close()
  })

  // two identity extensions: the first names the genuine node, the second another one
  const twice = craft(ec, [identity(a.nodeId), identity('someone-else')])
  t.throws(() => parseNodeCertificate(twice), TlsCertificateError, 'the parser refuses a doubled extension')
  // trailing bytes after the certificate
  const one = craft(ec, [identity(a.nodeId)])
  t.equal(parseNodeCertificate(one).nodeId, a.nodeId, 'the crafted certificate itself parses')
  t.throws(() => parseNodeCertificate(Uint8Array.of(...one, 0)), TlsCertificateError, 'trailing bytes refused')

  const cases: Array<[string, KeyObject, Uint8Array, RegExp]> = [
    ['a doubled identity extension', ec, twice, /names no node/],
    ['a P-256 key of its own naming the genuine node', ec, one, /not the certified one/],
    ['an Ed25519 key naming the genuine node', ed, craft(ed, [identity(a.nodeId)]), /not the certified one/],
    ['a node id shaped like a state key path', ec, craft(ec, [identity(`${a.nodeId}/../qc`)]), /check failed/],
    ['the genuine node id on another chain', ec, craft(ec, [identity(a.nodeId, 'other-chain')]), /check failed/]
  ]
  for (const [what, key, cert, why] of cases) {
    const s = await impostor(key, cert)
    const err = await c.requestUrl(`${s.url}/app/echo/secret`).catch((e: unknown) => e)
    t.ok(err instanceof NodeCheckError || err instanceof NoNodeServedError, `${what}: refused (${String(err)})`)
    t.match(String((err as Error).message), why, `${what}: says why`)
    t.equal(s.bytes(), 0, `${what}: no request byte was written`)
    s.close()
  }
  t.equal(a.served, 0, 'the genuine node was never asked either')
  await a.kill()
})

t.test('an app name of the chain’s longest length (64) can be requested', async t => {
  const name = `a${'b'.repeat(63)}`
  await net.publishApp(name)
  const a = await net.addNode()
  const c = createClient({ chain: { ...view, nodeIds: async () => [a.nodeId] } })
  t.teardown(() => {
    c.close()
  })
  const r = await c.request(name, { path: '/x' })
  t.equal(r.status, 200)
  t.equal((JSON.parse(Buffer.from(r.body).toString()) as { url: string }).url, `/app/${name}/x`)
  // one more character is not an app name anywhere, and is refused before the chain is read
  await t.rejects(c.request(`${name}c`), /not a valid name/)
  await a.kill()
})
