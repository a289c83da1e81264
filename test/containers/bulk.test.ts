// The bulk channel (containers/bulk.ts): block frames over a direct TCP connection opened with a
// one-time ticket that came over libp2p. Real stores, real libp2p hosts and sockets on 127.0.0.1.
// What must hold: the store uses it by default and the content is the same; a ticket works once,
// for a while, and only with its own secret; whatever else a connection sends first (fuzzed,
// trickled, too short, silent) is refused without serving anything or disturbing the server; a
// provider that offers a channel nobody can reach, or a ticket someone else used, costs a
// fallback to the libp2p stream, not the fetch; bytes that do not match their CIDs are refused
// on this channel as on the other; malformed offers are refused.
import t from 'tap'
import { mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createServer as createTcpServer, connect as tcpConnect, type Socket } from 'node:net'
import { randomBytes, createHash } from 'node:crypto'
import { CID } from 'multiformats/cid'
import * as Digest from 'multiformats/hashes/digest'
import { multiaddr } from '@multiformats/multiaddr'
import { createImageStore, createLocalLibp2p } from '../../containers/store.ts'
import { BulkServer, connectBulk, readPrefix } from '../../containers/bulk.ts'
import { BLOCKS_PROTOCOL, askForBlocks, receiveDag } from '../../containers/transfer.ts'
import { FrameReader, frame } from '../../encoding/frames.ts'
import { ContentMismatchError, FetchError } from '../../containers/errors.ts'
import { encode, decode } from '../../encoding/canonical.ts'
import { busyboxImage } from './helpers.ts'

const dir = mkdtempSync(join(tmpdir(), 'quorate-bulk-'))
t.teardown(() => {
  rmSync(dir, { recursive: true, force: true })
})

function cidOf(codec: number, bytes: Uint8Array): CID {
  return CID.createV1(codec, Digest.create(0x12, createHash('sha256').update(bytes).digest()))
}

async function collect(it: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Uint8Array[] = []
  for await (const c of it) parts.push(c)
  return Buffer.concat(parts)
}

async function closedPort(): Promise<number> {
  const s = createTcpServer()
  await new Promise<void>(resolve => s.listen(0, '127.0.0.1', resolve))
  const port = (s.address() as { port: number }).port
  await new Promise<void>(resolve =>
    s.close(() => {
      resolve()
    })
  )
  return port
}

t.test('two stores: the fetch takes the bulk channel by default, the libp2p stream with bulk: false', async t => {
  const a = await createImageStore({ dir: join(dir, 'a') })
  const b = await createImageStore({ dir: join(dir, 'b') })
  const c = await createImageStore({ dir: join(dir, 'c') })
  t.teardown(async () => {
    await a.stop()
    await b.stop()
    await c.stop()
  })
  const img = busyboxImage({ testLabel: 'bulk', padBytes: 5e6, body: 'bulk\n' }) // several 1 MiB leaves under a dag-pb root
  const { cid } = await a.add(img.tar)
  const progress: number[] = []
  const got = await collect(b.fetch(cid, { providers: a.multiaddrs(), onProgress: p => progress.push(p.bytes) }))
  t.ok(got.equals(img.tar), 'same bytes')
  t.same(a.served(), { stream: 0, bulk: 1 }, 'served over the bulk channel')
  t.ok(await b.has(cid), 'complete in the requester')
  t.ok(progress.length > 5 && progress.at(-1) === img.tar.byteLength, 'progress up to the whole file')
  t.ok((await collect(b.cat(cid))).equals(img.tar), 'stored blocks read back')

  const again = await collect(c.fetch(cid, { providers: a.multiaddrs(), bulk: false }))
  t.ok(again.equals(img.tar))
  t.same(a.served(), { stream: 1, bulk: 1 }, 'bulk: false stays on libp2p')
})

t.test('keep: false verifies and yields the blocks but stores none, on either channel', async t => {
  const a = await createImageStore({ dir: join(dir, 'keep-a') })
  const b = await createImageStore({ dir: join(dir, 'keep-b') })
  t.teardown(async () => {
    await a.stop()
    await b.stop()
  })
  const img = busyboxImage({ testLabel: 'bulk', padBytes: 3e6, body: 'not kept\n' })
  const { cid } = await a.add(img.tar)
  for (const bulk of [true, false]) {
    const got = await collect(b.fetch(cid, { providers: a.multiaddrs(), bulk, keep: false }))
    t.ok(got.equals(img.tar), `same bytes (bulk: ${bulk})`)
    t.notOk(await b.has(cid), 'not complete in the requester')
    t.same(await b.list(), [], 'nothing listed')
    t.same(
      readdirSync(join(dir, 'keep-b', 'blocks'), { recursive: true }).filter(f => String(f).endsWith('.data')),
      [],
      'no block file written'
    )
  }
  t.same(a.served(), { stream: 1, bulk: 1 }, 'fetched from the provider both times')
})

t.test('a store created with bulk: false never offers the channel', async t => {
  const a = await createImageStore({ dir: join(dir, 'nobulk-a'), bulk: false })
  const b = await createImageStore({ dir: join(dir, 'nobulk-b') })
  t.teardown(async () => {
    await a.stop()
    await b.stop()
  })
  const img = busyboxImage({ testLabel: 'bulk', body: 'no bulk\n' })
  const r = await a.add(img.tar)
  t.ok((await collect(b.fetch(r.cid, { providers: a.multiaddrs() }))).equals(img.tar))
  t.same(a.served(), { stream: 1, bulk: 0 })
})

t.test('BulkServer: a ticket works once, only with its secret, only until it expires', async t => {
  const leaf = randomBytes(200_000)
  const root = cidOf(0x55, leaf)
  const blocks = { get: async (c: CID) => (c.equals(root) ? leaf : undefined) }
  let clock = 1_000_000
  const server = new BulkServer({ blocks, hosts: () => ['127.0.0.1'], ticketTtlMs: 10_000, now: () => clock })
  t.teardown(async () => {
    await server.stop()
  })
  const read = async (offer: Parameters<typeof connectBulk>[1]): Promise<Buffer> => {
    const s = await connectBulk('127.0.0.1', offer)
    try {
      return await collect(receiveDag(new FrameReader(s), root, { store: async () => {} }))
    } finally {
      s.destroy()
    }
  }
  const offer = await server.offer(root)
  if (offer === undefined) {
    t.fail('no offer')
    return
  }
  t.ok((await read(offer)).equals(leaf), 'the offered DAG arrives whole and verified')
  t.equal(server.served, 1)
  await t.rejects(read(offer), FetchError, 'the same ticket again is refused')

  const other = await server.offer(root)
  if (other === undefined) {
    t.fail('no offer')
    return
  }
  await t.rejects(read({ ...other, key: randomBytes(32) }), FetchError, 'the right id with another secret is refused')
  await t.rejects(read({ ...other, id: randomBytes(16) }), FetchError, 'an unknown id is refused')
  await t.rejects(read(other), FetchError, 'a failed attempt used the ticket up')

  const late = await server.offer(root)
  if (late === undefined) {
    t.fail('no offer')
    return
  }
  clock += 10_000
  await t.rejects(read(late), FetchError, 'an expired offer is refused')
  t.equal(server.served, 1, 'nothing else was served')
})

/** Sends `bytes` (in the given pieces) to the server's port; resolves with what came back before it closed. */
async function present(
  port: number,
  pieces: readonly Uint8Array[],
  gapMs = 0
): Promise<{ answer: Buffer; closed: boolean }> {
  const s: Socket = tcpConnect({ host: '127.0.0.1', port })
  s.on('error', () => {})
  const got: Buffer[] = []
  s.on('data', (c: Buffer) => got.push(c))
  const closed = new Promise<boolean>(resolve => {
    s.once('close', () => {
      resolve(true)
    })
    setTimeout(() => {
      resolve(false)
    }, 3000)
  })
  for (const p of pieces) {
    if (gapMs > 0) await new Promise(resolve => setTimeout(resolve, gapMs))
    if (!s.destroyed) s.write(p)
  }
  const c = await closed
  s.destroy()
  return { answer: Buffer.concat(got), closed: c }
}

t.test('BulkServer: whatever else comes first is refused, and nothing is served (fuzz)', async t => {
  const leaf = randomBytes(50_000)
  const root = cidOf(0x55, leaf)
  const server = new BulkServer({ blocks: { get: async () => leaf }, hosts: () => ['127.0.0.1'], ticketTimeoutMs: 300 })
  t.teardown(async () => {
    await server.stop()
  })
  const offer = await server.offer(root)
  if (offer === undefined) {
    t.fail('no offer')
    return
  }
  const ticket = Buffer.concat([offer.id, offer.key])
  let refused = 0
  const cases: Array<[string, Uint8Array[]]> = [
    ['nothing at all', []],
    ['one byte short', [ticket.subarray(0, 47)]],
    ['the id alone', [ticket.subarray(0, 16)]],
    [
      'a TLS ClientHello-like start',
      [Uint8Array.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03])]
    ]
  ]
  for (let i = 0; i < 60; i++) cases.push([`random ${i}`, [randomBytes(1 + Math.floor(Math.random() * 120))]])
  for (let i = 0; i < 20; i++) {
    const m = Buffer.from(ticket)
    m[Math.floor(Math.random() * 48)] ^= 1 + Math.floor(Math.random() * 255)
    cases.push([`ticket with one byte changed ${i}`, [m]])
  }
  for (const [name, pieces] of cases) {
    const r = await present(offer.port, pieces)
    if (r.answer.byteLength !== 0 || !r.closed)
      t.fail(`${name}: answered ${r.answer.byteLength} byte(s), closed: ${r.closed}`)
    else refused++
  }
  t.equal(refused, cases.length, `${cases.length} wrong or incomplete tickets: each closed with no byte sent back`)
  t.equal(server.served, 0, 'nothing served')
  // a changed-byte case may have hit the id and used the ticket up: offer again
  const fresh = await server.offer(root)
  if (fresh === undefined) {
    t.fail('no offer')
    return
  }
  const trickled = await present(
    fresh.port,
    [...Buffer.concat([fresh.id, fresh.key])].map(b => Uint8Array.of(b)),
    2
  )
  t.equal(trickled.answer[0], 0x01, 'a ticket trickled a byte at a time is still taken')
  t.ok(trickled.answer.byteLength > 50_000, 'and the DAG follows')
  t.equal(server.served, 1)
  const third = await server.offer(root)
  if (third === undefined) {
    t.fail('no offer')
    return
  }
  const chatty = await present(third.port, [Buffer.concat([third.id, third.key, Buffer.from('and more')])])
  t.same(
    [chatty.closed, chatty.answer.byteLength, server.served],
    [true, 0, 1],
    'a ticket with more bytes behind it is refused'
  )
})

t.test('readPrefix: bytes after the prefix stay for the next reader', async t => {
  const server = createTcpServer(s => {
    s.end(Buffer.concat([Uint8Array.of(1), Buffer.from('first frame bytes')]))
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => {
    server.close()
  })
  const s = tcpConnect({ host: '127.0.0.1', port: (server.address() as { port: number }).port })
  const ack = await readPrefix(s, 1, 2000)
  t.same(ack, Buffer.of(1))
  const rest: Buffer[] = []
  s.on('data', (c: Buffer) => rest.push(c))
  s.resume()
  await new Promise(resolve => s.once('end', resolve))
  t.equal(
    Buffer.concat(rest).toString(),
    'first frame bytes',
    'one chunk carried the ack and the data; the data was put back'
  )
  const silent = createTcpServer(() => {})
  await new Promise<void>(resolve => silent.listen(0, '127.0.0.1', resolve))
  t.teardown(() => {
    silent.close()
  })
  const q = tcpConnect({ host: '127.0.0.1', port: (silent.address() as { port: number }).port })
  t.equal(await readPrefix(q, 1, 200), undefined, 'silence: undefined after the timeout')
  q.destroy()
})

t.test('a ticket someone else used first: the requester falls back to the libp2p stream', async t => {
  const b = await createImageStore({ dir: join(dir, 'stolen-b') })
  t.teardown(async () => {
    await b.stop()
  })
  const leaf = randomBytes(100_000)
  const root = cidOf(0x55, leaf)
  const server = new BulkServer({ blocks: { get: async () => leaf }, hosts: () => ['127.0.0.1'] })
  t.teardown(async () => {
    await server.stop()
  })
  let thief = 0
  const addrs = await evilProvider(t, async (req, send) => {
    if (req.bulk !== true) {
      send(frame(encode({ v: 1, ok: true })).subarray())
      send(frame(leaf).subarray())
      return
    }
    const offer = await server.offer(root)
    if (offer === undefined) throw new Error('no offer')
    const stolen = await present(offer.port, [Buffer.concat([offer.id, offer.key])]) // an eavesdropper redeems it first
    thief = stolen.answer.byteLength
    send(frame(encode({ v: 1, ok: true, bulk: { port: offer.port, id: offer.id, key: offer.key } })).subarray())
  })
  const got = await collect(b.fetch(root.toString(), { providers: addrs }))
  t.ok(thief > 100_000, 'the eavesdropper got the public content, once')
  t.ok(got.equals(leaf), 'the requester still got it, over the libp2p stream')
  t.ok(await b.has(root.toString()))
})

t.test('BulkServer on a fixed port (what a firewall or NAT forwards)', async t => {
  const leaf = randomBytes(1000)
  const root = cidOf(0x55, leaf)
  const port = await closedPort()
  const server = new BulkServer({ blocks: { get: async () => leaf }, hosts: () => ['127.0.0.1'], port })
  t.teardown(async () => {
    await server.stop()
  })
  const offer = await server.offer(root)
  t.equal(offer?.port, port, 'offers the configured port')
  if (offer === undefined) return
  const s = await connectBulk('127.0.0.1', offer)
  try {
    t.ok((await collect(receiveDag(new FrameReader(s), root, { store: async () => {} }))).equals(leaf))
  } finally {
    s.destroy()
  }
})

t.test('BulkServer stops: connections end, no more offers', async t => {
  const leaf = randomBytes(1000)
  const root = cidOf(0x55, leaf)
  const server = new BulkServer({ blocks: { get: async () => leaf }, hosts: () => ['127.0.0.1'] })
  const offer = await server.offer(root)
  t.ok(offer !== undefined)
  await server.stop()
  t.equal(await server.offer(root), undefined, 'a stopped server offers nothing')
  if (offer !== undefined)
    await t.rejects(connectBulk('127.0.0.1', offer, { timeoutMs: 2000 }), FetchError, 'its port is closed')
})

/** A libp2p provider that answers our protocol as `answer` says, for the requester under test. */
async function evilProvider(
  t: { teardown: (fn: () => Promise<void>) => void },
  answer: (req: Record<string, unknown>, send: (x: Uint8Array) => void) => Promise<void>
): Promise<string[]> {
  const host = await createLocalLibp2p()
  t.teardown(async () => {
    await host.stop()
  })
  await host.handle(BLOCKS_PROTOCOL, async stream => {
    const r = new FrameReader(stream)
    const req = await r.next(4096)
    if (req === undefined) return
    await answer(decode(req) as Record<string, unknown>, x => {
      stream.send(x)
    })
    await stream.close()
  })
  return host.getMultiaddrs().map(m => m.toString())
}

t.test('an offer nobody can reach: the requester falls back to the libp2p stream', async t => {
  const b = await createImageStore({ dir: join(dir, 'fallback-b') })
  t.teardown(async () => {
    await b.stop()
  })
  const leaf = randomBytes(100_000)
  const root = cidOf(0x55, leaf)
  const port = await closedPort()
  const asked: boolean[] = []
  const addrs = await evilProvider(t, async (req, send) => {
    asked.push(req.bulk === true)
    if (req.bulk === true) {
      send(frame(encode({ v: 1, ok: true, bulk: { port, id: randomBytes(16), key: randomBytes(32) } })).subarray())
      return
    }
    send(frame(encode({ v: 1, ok: true })).subarray())
    send(frame(leaf).subarray())
  })
  const got = await collect(b.fetch(root.toString(), { providers: addrs }))
  t.ok(got.equals(leaf), 'fetched over the libp2p stream')
  t.same(asked, [true, false], 'asked for bulk first, then for the blocks on libp2p')
  t.ok(await b.has(root.toString()))
})

t.test('other bytes on the bulk channel: refused, nothing complete', async t => {
  const b = await createImageStore({ dir: join(dir, 'evil-b') })
  t.teardown(async () => {
    await b.stop()
  })
  const leaf = randomBytes(100_000)
  const root = cidOf(0x55, leaf)
  const server = new BulkServer({ blocks: { get: async () => randomBytes(100_000) }, hosts: () => ['127.0.0.1'] })
  t.teardown(async () => {
    await server.stop()
  })
  const addrs = await evilProvider(t, async (_req, send) => {
    const offer = await server.offer(root)
    send(
      frame(
        encode({
          v: 1,
          ok: true,
          bulk: { port: offer?.port ?? 0, id: offer?.id ?? new Uint8Array(16), key: offer?.key ?? new Uint8Array(32) }
        })
      ).subarray()
    )
  })
  await t.rejects(collect(b.fetch(root.toString(), { providers: addrs })), ContentMismatchError)
  t.notOk(await b.has(root.toString()), 'not marked complete')
})

t.test('malformed offers are refused with a FetchError', async t => {
  const client = await createLocalLibp2p()
  t.teardown(async () => {
    await client.stop()
  })
  const root = cidOf(0x55, randomBytes(10))
  const offers: Record<string, unknown> = {
    'port 0': { port: 0, id: randomBytes(16), key: randomBytes(32) },
    'port too big': { port: 70000, id: randomBytes(16), key: randomBytes(32) },
    'short id': { port: 1234, id: randomBytes(4), key: randomBytes(32) },
    'short key': { port: 1234, id: randomBytes(16), key: randomBytes(8) },
    'not a map': 'x'
  }
  for (const [name, bulk] of Object.entries(offers)) {
    const addrs = await evilProvider(t, async (_req, send) => {
      send(frame(encode({ v: 1, ok: true, bulk } as never)).subarray())
    })
    const s = await client.dialProtocol(multiaddr(addrs[0]), BLOCKS_PROTOCOL)
    await t.rejects(askForBlocks(s, root, { bulk: true }), FetchError, name)
    s.abort(new Error('done'))
  }
  // an offer that was not asked for
  const addrs = await evilProvider(t, async (_req, send) => {
    send(frame(encode({ v: 1, ok: true, bulk: { port: 1, id: randomBytes(16), key: randomBytes(32) } })).subarray())
  })
  const s = await client.dialProtocol(multiaddr(addrs[0]), BLOCKS_PROTOCOL)
  await t.rejects(askForBlocks(s, root), /not asked for/)
  s.abort(new Error('done'))
})
