// The agent's host and the image store's host are one configuration (containers/libp2p.ts):
// they connect to each other over TLS 1.3 and yamux, both run identify, and the agent's host
// still refuses a key that is not Ed25519.
import t from 'tap'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { createP2PHost } from '../../agent/p2p/host.ts'
import { createLocalLibp2p } from '../../containers/libp2p.ts'
import { InvalidInputError } from '../../encoding/errors.ts'

t.test('agent host and store host connect with TLS first, yamux and identify', async t => {
  const node = await createP2PHost({ privateKey: await generateKeyPair('Ed25519') })
  const store = await createLocalLibp2p()
  t.teardown(async () => {
    await node.stop()
    await store.stop()
  })
  t.ok(
    node.getMultiaddrs().every(a => a.toString().startsWith('/ip4/127.0.0.1/tcp/')),
    'listens on loopback by default'
  )
  const conn = await store.dial(node.getMultiaddrs()[0])
  t.equal(conn.encryption, '/tls/1.0.0', 'TLS is chosen over noise')
  t.equal(conn.multiplexer, '/yamux/1.0.0')
  t.ok(node.services.identify !== undefined && store.services.identify !== undefined, 'both run identify')
})

t.test('announce addresses replace the listen addresses', async t => {
  // announced only: nothing binds or dials port 4999
  const node = await createP2PHost({
    privateKey: await generateKeyPair('Ed25519'),
    announce: ['/ip4/127.0.0.1/tcp/4999']
  })
  t.teardown(async () => {
    await node.stop()
  })
  t.same(
    node.getMultiaddrs().map(a => a.toString()),
    [`/ip4/127.0.0.1/tcp/4999/p2p/${node.peerId.toString()}`]
  )
})

t.test('the agent host refuses a key that is not Ed25519', async t => {
  await t.rejects(createP2PHost({ privateKey: await generateKeyPair('secp256k1') }), InvalidInputError)
})

t.test('a burst of local peers is not refused (loopback is exempt from the per-host connection limits)', async t => {
  const node = await createLocalLibp2p()
  const peers = await Promise.all(Array.from({ length: 10 }, async () => await createLocalLibp2p()))
  t.teardown(async () => {
    await Promise.all(
      [node, ...peers].map(async h => {
        await h.stop()
      })
    )
  })
  // libp2p refuses a 6th inbound connection from one host within a second unless it is allowed
  const results = await Promise.allSettled(peers.map(async p => await p.dial(node.getMultiaddrs()[0])))
  t.same(
    results.map(r => r.status),
    peers.map(() => 'fulfilled'),
    '10 peers on 127.0.0.1 connect at once'
  )
})
